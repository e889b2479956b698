# Makefile: the cai_synergy PostgreSQL extension (PGXS).
#
# The PostgreSQL-free core (src/core) is also built on its own by core.mk for
# the unit tests, sanitizer build and fuzzers; here the same core objects are
# linked into the extension together with the thin server layer (src/pg).

EXTENSION = cai_synergy
EXTVERSION = 0.1.0

MODULE_big = cai_synergy
OBJS = \
	src/core/common.o \
	src/core/modelutil.o \
	src/core/format.o \
	src/core/tokenize.o \
	src/core/options.o \
	src/core/ops.o \
	src/core/optim.o \
	src/core/lstm.o \
	src/core/crf.o \
	src/core/metrics.o \
	src/core/textclf.o \
	src/core/textclf_accurate.o \
	src/core/chunks.o \
	src/core/ner.o \
	src/pg/cai_synergy.o \
	src/pg/catalog.o \
	src/pg/predict.o \
	src/pg/train.o \
	src/pg/jobs.o \
	src/pg/ner.o \
	src/pg/cache.o

DATA = $(wildcard sql/$(EXTENSION)--*.sql)

# pg_regress: tests in test/sql, expected output in the top-level expected/
# (test/expected is a symlink to it, since PostgreSQL 15's pg_regress has no --expecteddir).
REGRESS = catalog bad_models trusted
REGRESS_OPTS = --inputdir=test --load-extension=$(EXTENSION)

OPTFLAGS ?= -march=native
PG_CPPFLAGS = -Iinclude -std=gnu11 -fno-fast-math $(OPTFLAGS) -Wall -Wextra -Werror \
	-Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare -Wno-cast-function-type -Wno-declaration-after-statement
SHLIB_LINK = -lopenblas -ljson-c -lm -pthread

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS does not track header dependencies: rebuild when any header changes.
$(OBJS): $(wildcard include/cai/*.h src/pg/*.h)
