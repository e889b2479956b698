# core.mk: the PostgreSQL-free core (src/core, include/cai), its unit tests,
# a sanitizer build and the libFuzzer targets.  No server headers here.
#
#   make -f core.mk               # build/libcaicore.a
#   make -f core.mk check         # unit tests, final "N passed, N failed"
#   make -f core.mk check-asan    # the same under ASan + UBSan (clang)
#   make -f core.mk fuzz FUZZ_SECONDS=60
#   make -f core.mk bench         # the bench tools: build/bench/{gemm,textclf_cli,ner_cli,load_bench,vectors_cli,line_rtt,pair_probe,...}
#   make -f core.mk lib           # libcai: build/libcai.a, build/libcai.so (include/cai/cai.h)
#   make -f core.mk cli           # the cai command: build/cai (and build/cai-shared, linked with libcai.so)
#   make -f core.mk check-cli     # the cai command against the core API (test/cli/run.sh)
#   make -f core.mk WERROR=1 ...  # warnings are errors (CI and scripts/test.sh)
#   make -f core.mk OPTFLAGS=-march=native ...  # tuned to this CPU, not portable
#
# BUILD selects the output directory (helpers working in parallel use their own).

BUILD ?= build
CC ?= cc
# OPTFLAGS: empty by default, a portable build (baseline x86-64, or the
# compiler's default on arm64); the hot kernels carry AVX2 and AVX-512 clones
# chosen at run time (src/core/dispatch.h).  OPTFLAGS=-march=native tunes a
# local build to this CPU (its bench figures: bench/results-portable.md).
OPTFLAGS ?=
# WERROR=1 (CI, scripts/test.sh): warnings are errors.  Off by default, so a
# newer compiler's new warning does not stop a user's build.
WERROR ?= 0
# -ffp-contract=off: no fused multiply-add, so every CPU and every kernel
# clone computes the same IEEE operations in the same order (model bytes do
# not depend on the machine that trained them; -fno-fast-math keeps the
# order of reductions).  -fno-math-errno: sqrtf is the instruction, so loops
# that take square roots vectorize (Adam); the values are the same (IEEE
# square root), and the core reads errno only after strtod / strtol.
# POOL_GUARD (tests): allocation on a pool thread aborts (see common.h); the
# installed cai command is built without it (Makefile, install-cli).
POOL_GUARD ?= -DCAI_CHECK_POOL_ALLOC
# -Wno-missing-field-initializers (as the extension's Makefile): option tables
# give an option's search range (cai_opt_def.tune) only where it is searched.
CFLAGS_CORE = -std=gnu11 -O2 -g -fPIC -fno-fast-math -fno-math-errno -ffp-contract=off $(OPTFLAGS) \
	-Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) -Wno-unused-parameter -Wno-missing-field-initializers \
	-Iinclude $(POOL_GUARD)
# OpenBLAS is opened at run time (src/core/blas.h), not linked
LIBS_CORE = -ljson-c -lm -pthread

# The core's modules: modules.mk (shared with the extension's Makefile).
include modules.mk

# Unit test programs and the core modules each links (explicit, so a module
# under construction does not break unrelated tests).
UNIT_TESTS = test_format test_tokenize test_options test_ops test_seq test_metrics test_trainer test_pool test_textclf test_textclf_accurate test_ner test_model test_compat test_conformance test_vectors test_textclf_vectors test_vectors_train test_wordpiece test_safetensors test_encoder test_encoder_model test_transformer test_tune test_ensemble test_gemm test_pretrain
test_format_MODULES = common format
test_tokenize_MODULES = common tokenize
test_options_MODULES = common options
test_ops_MODULES = common blas ops optim
test_seq_MODULES = common blas ops optim lstm crf
test_metrics_MODULES = common modelutil metrics
test_trainer_MODULES = common modelutil trainer
test_pool_MODULES = common blas pool
test_textclf_MODULES = common modelutil format tokenize options metrics trainer gradcheck blas pool ops optim lstm chunks $(TEXTCLF_MODULES)
test_textclf_accurate_MODULES = $(test_textclf_MODULES)
test_ner_MODULES = common modelutil format tokenize options trainer gradcheck blas pool ops optim lstm crf chunks $(NER_MODULES)
ENCODER_STACK = gemm safetensors encoder wordpiece wordpiece_train encoder_model $(TRANSFORMER_MODULES) pretrain
test_model_MODULES = common modelutil format tokenize options metrics trainer gradcheck blas pool ops optim lstm crf chunks $(TEXTCLF_MODULES) $(NER_MODULES) vectors vectors_train $(ENCODER_STACK) model ensemble observe
test_compat_MODULES = $(test_model_MODULES)
test_conformance_MODULES = $(test_model_MODULES)
test_vectors_MODULES = common modelutil format tokenize vectors
test_textclf_vectors_MODULES = $(test_model_MODULES)
test_vectors_train_MODULES = common modelutil format tokenize options trainer blas pool vectors vectors_train
test_wordpiece_MODULES = common tokenize wordpiece wordpiece_train
test_safetensors_MODULES = common safetensors
test_encoder_MODULES = $(test_model_MODULES)
test_tune_MODULES = $(test_model_MODULES) tune
test_ensemble_MODULES = $(test_model_MODULES)
test_encoder_model_MODULES = $(test_model_MODULES)
test_transformer_MODULES = $(test_model_MODULES)
test_gemm_MODULES = common blas gemm
test_pretrain_MODULES = $(test_model_MODULES)

FUZZERS = fuzz_format fuzz_tokenize fuzz_options fuzz_load fuzz_vectors fuzz_safetensors fuzz_wordpiece fuzz_encoder_load
fuzz_format_MODULES = common format
fuzz_tokenize_MODULES = common tokenize
fuzz_options_MODULES = common options
fuzz_load_MODULES = $(test_textclf_MODULES)
fuzz_vectors_MODULES = common modelutil format tokenize vectors
fuzz_safetensors_MODULES = common safetensors
fuzz_wordpiece_MODULES = common tokenize wordpiece wordpiece_train
fuzz_encoder_load_MODULES = $(test_model_MODULES)
FUZZ_SECONDS ?= 60

.PHONY: all check check-asan fuzz bench clean-core lib cli check-cli
all: $(BUILD)/libcaicore.a

$(BUILD)/%.o: src/core/%.c $(wildcard include/cai/*.h src/core/*.h)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS_CORE) -c -o $@ $<

# rm first: ar only adds and replaces, and a member of a removed module would stay.
$(BUILD)/libcaicore.a: $(CORE_MODULES:%=$(BUILD)/%.o)
	rm -f $@
	ar rcs $@ $^

.SECONDEXPANSION:
$(BUILD)/test/%: test/unit/%.c $(wildcard test/unit/*.h) $$(addprefix $(BUILD)/,$$(addsuffix .o,$$($$*_MODULES)))
	@mkdir -p $(BUILD)/test
	$(CC) $(CFLAGS_CORE) -Itest/unit -o $@ $< $(patsubst %,$(BUILD)/%.o,$($*_MODULES)) $(LIBS_CORE)

check: $(UNIT_TESTS:%=$(BUILD)/test/%)
	@test/unit/run.sh $^

# Sanitizer build: same sources, clang, ASan + UBSan, no recovery.
check-asan:
	$(MAKE) -f core.mk BUILD=build-asan CC=clang \
		OPTFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" check

$(BUILD)/fuzz/%: test/fuzz/%.c $$(addprefix src/core/,$$(addsuffix .c,$$($$*_MODULES)))
	@mkdir -p $(BUILD)/fuzz
	clang -std=gnu11 -g -O1 -Iinclude -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-o $@ $^ $(LIBS_CORE)

fuzz: $(FUZZERS:%=$(BUILD)/fuzz/%)
	@set -e; for f in $(FUZZERS); do \
		mkdir -p $(BUILD)/corpus/$$f; \
		echo "== $$f ($(FUZZ_SECONDS) s)"; \
		if $(BUILD)/fuzz/$$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 \
			-print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/$$f- \
			$(BUILD)/corpus/$$f test/fuzz/corpus/$$f > $(BUILD)/fuzz/$$f.log 2>&1; then \
			tail -n 6 $(BUILD)/fuzz/$$f.log; \
		else \
			tail -n 60 $(BUILD)/fuzz/$$f.log; echo "$$f: FAILED (artifacts in $(BUILD)/fuzz/)"; exit 1; \
		fi; \
	done

# Benchmark tools (bench/*.c), linked with the core library; the bench/*.sh
# scripts build them through this target.
BENCH_TOOLS = gemm textclf_cli ner_cli load_bench vectors_cli encoder_bench make_encoder pretrain_cli encoder_torch_check line_rtt pair_probe
bench: $(BENCH_TOOLS:%=$(BUILD)/bench/%)

$(BUILD)/bench/%: bench/%.c bench/bench_util.h $(BUILD)/libcaicore.a
	@mkdir -p $(BUILD)/bench
	$(CC) $(CFLAGS_CORE) -o $@ $< $(BUILD)/libcaicore.a $(LIBS_CORE) $(if $(filter gemm,$*),-lopenblas)

clean-core:
	rm -rf build build-asan build-*

# Crafted corrupt models for the SQL tests (test/sql/bad_models.sql).
$(BUILD)/make_bad_models: test/fuzz/make_bad_models.c test/unit/format_craft.h src/core/format.c src/core/common.c
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS_CORE) -Itest/unit -o $@ test/fuzz/make_bad_models.c src/core/format.c src/core/common.c $(LIBS_CORE)

# libcai: the core as a C library without PostgreSQL.  The static library is
# the core's objects; the shared one links the same -fPIC objects with a
# version script that exports exactly the functions and variables declared in
# the public headers (include/cai/*.h) and makes every other symbol local, so
# the internal helpers of src/core (modelutil.h, blas.h, pool.h, ...) stay
# private.  The list is generated: the global symbols the objects define,
# kept when their name occurs in a public header.
LIBCAI_SONAME = libcai.so.0
lib: $(BUILD)/libcai.a $(BUILD)/libcai.so

$(BUILD)/libcai.a: $(CORE_MODULES:%=$(BUILD)/%.o)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libcai.map: $(CORE_MODULES:%=$(BUILD)/%.o) $(wildcard include/cai/*.h)
	@cat include/cai/*.h | grep -oE '[A-Za-z_][A-Za-z0-9_]*' | sort -u > $@.ids
	@nm -g --defined-only $(CORE_MODULES:%=$(BUILD)/%.o) | awk 'NF == 3 && $$2 ~ /^[TDRBV]$$/ { print $$3 }' | \
		sort -u > $@.defs
	@{ echo "CAI_0 {"; echo "  global:"; comm -12 $@.defs $@.ids | sed 's/^/    /; s/$$/;/'; \
		echo "  local: *;"; echo "};"; } > $@
	@rm -f $@.ids $@.defs

$(BUILD)/libcai.so: $(CORE_MODULES:%=$(BUILD)/%.o) $(BUILD)/libcai.map
	$(CC) -shared -Wl,-soname,$(LIBCAI_SONAME) -Wl,--version-script=$(BUILD)/libcai.map -Wl,-z,defs \
		-o $@ $(CORE_MODULES:%=$(BUILD)/%.o) $(LIBS_CORE)
	ln -sf libcai.so $(BUILD)/$(LIBCAI_SONAME)

# The cai command (src/cli/cai.c, include/cai/cai.h only), statically linked;
# cai-shared is the same program linked with libcai.so (proves the exported
# API is enough; the tests run both).
cli: $(BUILD)/cai $(BUILD)/cai-shared

CLI_SOURCES = src/cli/cai.c src/cli/cai_encoder.c
$(BUILD)/cai: $(CLI_SOURCES) src/cli/cai_cli.h $(wildcard include/cai/*.h) $(BUILD)/libcai.a
	$(CC) $(CFLAGS_CORE) -o $@ $(CLI_SOURCES) $(BUILD)/libcai.a $(LIBS_CORE)

$(BUILD)/cai-shared: $(CLI_SOURCES) src/cli/cai_cli.h $(wildcard include/cai/*.h) $(BUILD)/libcai.so
	$(CC) $(CFLAGS_CORE) -o $@ $(CLI_SOURCES) -L$(BUILD) -l:libcai.so -Wl,-rpath,'$$ORIGIN' $(LIBS_CORE)

$(BUILD)/test/test_cli: test/cli/test_cli.c $(wildcard include/cai/*.h) $(BUILD)/libcai.a
	@mkdir -p $(BUILD)/test
	$(CC) $(CFLAGS_CORE) -o $@ test/cli/test_cli.c $(BUILD)/libcai.a $(LIBS_CORE)

check-cli: $(BUILD)/cai $(BUILD)/cai-shared $(BUILD)/libcai.so $(BUILD)/test/test_cli
	@test/cli/run.sh $(BUILD)
