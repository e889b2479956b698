# modules.mk: the one list of source modules, included by Makefile (the
# extension) and core.mk (the core alone: unit tests, sanitizers, fuzzers,
# bench tools).  A new module is one name here.
#
# Text classification and the NER tagger are each one module in several files
# (src/core/textclf_internal.h, src/core/ner_internal.h).
TEXTCLF_MODULES = textclf textclf_features textclf_tables textclf_fast textclf_fast_train textclf_accurate textclf_accurate_train \
	textclf_train_common
NER_MODULES = ner_features ner_params ner_net ner_tag ner_train ner_shards
TRANSFORMER_MODULES = transformer transformer_train
CORE_MODULES = common modelutil format tokenize options blas ops optim lstm crf metrics trainer pool gemm gradcheck $(TEXTCLF_MODULES) chunks \
	$(NER_MODULES) model ensemble observe tune vectors vectors_train wordpiece wordpiece_train safetensors encoder encoder_model $(TRANSFORMER_MODULES) pretrain

# The PostgreSQL layer (src/pg), in the extension only.
PG_MODULES = cai_synergy catalog citus predict stats batch vector_sets encoder drift train train_worker tune stream jobs ner cache pretrain
