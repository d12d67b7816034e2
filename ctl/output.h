/* dbctl's one output module: a json_t printed as JSON or YAML (libyaml's
 * emitter walks the value), and patronictl-style boxed tables. Data goes to
 * the FILE given (stdout); nothing here logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "macro.h"

/* One compact line of JSON and a newline. Returns 0, -ENOMEM or -EIO. */
int output_json(const json_t *v, FILE *f);

/* A YAML block document (no "---" / "..." markers). Strings that YAML would
 * read back as another type ("123", "on", "null", "") are quoted. Returns 0,
 * -ENOMEM or -EIO. */
int output_yaml(const json_t *v, FILE *f);

typedef struct OutputTable OutputTable;

/* headers (borrowed, copied) name n_cols columns. NULL on -ENOMEM. */
OutputTable *output_table_new(size_t n_cols, const char *const *headers);
OutputTable *output_table_free(OutputTable *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(OutputTable *, output_table_free);

/* Right-aligns column col (numbers); columns are left-aligned by default. */
void output_table_align_right(OutputTable *t, size_t col);

/* Appends a row of n_cols cells (borrowed, copied; NULL prints empty).
 * Returns 0 or -ENOMEM. */
int output_table_add_row(OutputTable *t, const char *const *cells);

/* Prints the table; title (may be NULL) is written into the top border as
 * patronictl does: "+ Cluster: batman (7214...) ------+". Returns 0 or -EIO. */
int output_table_print(const OutputTable *t, const char *title, FILE *f);
