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

/* v as PyYAML's safe_dump writes it for patronictl (keys sorted; flow
 * style `{a: 1, b: x}` or block style), without the final newline, in a new
 * string in *ret. Returns 0, -ENOMEM or -ELOOP. */
int output_yaml_text(const json_t *v, bool flow, char **ret);

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
 * patronictl does: "+ Cluster: batman (7214...) ------+". A cell may hold
 * several lines; then a rule separates every row (prettytable's hrules=ALL,
 * which patronictl asks for then). Returns 0 or -EIO. */
int output_table_print(const OutputTable *t, const char *title, FILE *f);

/* patronictl's --format (-f) values; "yml" reads as yaml and dbctl's
 * "table" as pretty. */
typedef enum OutputFormat {
    OUTPUT_FORMAT_PRETTY,
    OUTPUT_FORMAT_TSV,
    OUTPUT_FORMAT_JSON,
    OUTPUT_FORMAT_YAML,
    _OUTPUT_FORMAT_MAX,
    _OUTPUT_FORMAT_INVALID = -22,
} OutputFormat;

const char *output_format_to_string(OutputFormat f);
OutputFormat output_format_from_string(const char *s);

/* A table cell's text as patronictl prints it: a string as is, a number in
 * decimal, null as "", an object or array as YAML (output_yaml_text; flow
 * style in tsv, block style in a pretty table). A new string in *ret;
 * 0 or -ENOMEM. */
int output_cell_text(const json_t *cell, bool flow, char **ret);

/* patronictl's print_output() for -f tsv, json and yaml. rows is an array of
 * rows, each an array of n_cols cells (strings, integers, objects; a
 * missing cell is ""). tsv: the column names and then each row, joined by
 * tabs (cells as output_cell_text in flow style). json: one line, a list of
 * objects {column: cell}, as Python's json.dumps; yaml: the same list as
 * safe_dump writes it (keys sorted). drop_empty leaves out cells whose text
 * is empty, as patronictl does for tables with a title (list). Returns 0,
 * -EINVAL (pretty, or bad arguments), -ENOMEM or -EIO. */
int output_rows(OutputFormat fmt, const char *const *columns, size_t n_cols, const json_t *rows,
                bool drop_empty, FILE *f);
