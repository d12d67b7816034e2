/* dbctl output: JSON through jansson, YAML through libyaml's emitter (so
 * quoting and escaping follow the YAML spec rather than our guesses), and a
 * small table printer in patronictl's prettytable style. Widths count bytes;
 * member names and hosts are ASCII in practice. */
#include "output.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

/* Room for the decimal text of a json_int_t or a %.17g double. */
#define OUTPUT_NUMBER_MAX 40
/* Nesting deeper than this is refused (our values are 3 levels deep). */
#define OUTPUT_DEPTH_MAX 32

int output_json(const json_t *v, FILE *f)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (!s) {
        return -ENOMEM;
    }
    int r = fprintf(f, "%s\n", s) < 0 ? -EIO : 0;
    free(s);
    return r;
}

/* ---- YAML ---- */

/* True when a plain scalar with this text would not read back as a string
 * under YAML 1.1 (PyYAML) or 1.2 core rules. */
static bool yaml_needs_quotes(const char *s)
{
    static const char *const words[] = { "",     "~",    "null",  "Null",  "NULL",  "true",
                                         "True", "TRUE", "false", "False", "FALSE", "yes",
                                         "Yes",  "YES",  "no",    "No",    "NO",    "on",
                                         "On",   "ON",   "off",   "Off",   "OFF",   "y",
                                         "Y",    "n",    "N",     ".inf",  ".nan" };
    for (size_t i = 0; i < ELEMENTSOF(words); i++) {
        if (strcmp(s, words[i]) == 0) {
            return true;
        }
    }
    const char *p = s + (*s == '-' || *s == '+');
    if (!*p) {
        return false;
    }
    /* anything strtod swallows whole (ints, floats, hex, exponents) */
    char *end = NULL;
    (void)strtod(p, &end);
    if (end && end != p && *end == '\0') {
        return true;
    }
    /* YAML 1.1 timestamps (2030-01-01, 2030-01-01T12:00:00+00:00): PyYAML
     * reads them as dates; quoting a few more strings is harmless */
    if (strspn(s, "0123456789") == 4 && s[4] == '-' && s[5] >= '0' && s[5] <= '9') {
        return true;
    }
    /* 1_000 and 0o17, 0b101, sexagesimal 1:20 */
    return strspn(p, "0123456789_:") == strlen(p) || strncmp(p, "0o", 2) == 0 ||
           strncmp(p, "0b", 2) == 0;
}

static int emit(yaml_emitter_t *e, yaml_event_t *ev, int ok)
{
    if (!ok) {
        return -ENOMEM;
    }
    return yaml_emitter_emit(e, ev) ? 0 : -EIO;
}

static int emit_scalar(yaml_emitter_t *e, const char *text, bool quoted)
{
    yaml_event_t ev;
    int ok = yaml_scalar_event_initialize(
        &ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), !quoted, 1,
        quoted ? YAML_SINGLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
    return emit(e, &ev, ok);
}

static int emit_value(yaml_emitter_t *e, const json_t *v, unsigned depth)
{
    yaml_event_t ev;
    char num[OUTPUT_NUMBER_MAX];
    int r;

    if (depth > OUTPUT_DEPTH_MAX) {
        return -ELOOP;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        r = emit(e, &ev,
                 yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE));
        const char *key;
        json_t *child;
        json_object_foreach((json_t *)v, key, child)
        {
            if (r >= 0) {
                r = emit_scalar(e, key, yaml_needs_quotes(key));
            }
            if (r >= 0) {
                r = emit_value(e, child, depth + 1);
            }
        }
        return r < 0 ? r : emit(e, &ev, yaml_mapping_end_event_initialize(&ev));
    }
    case JSON_ARRAY: {
        r = emit(
            e, &ev,
            yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE));
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child)
        {
            if (r >= 0) {
                r = emit_value(e, child, depth + 1);
            }
        }
        return r < 0 ? r : emit(e, &ev, yaml_sequence_end_event_initialize(&ev));
    }
    case JSON_STRING:
        return emit_scalar(e, json_string_value(v), yaml_needs_quotes(json_string_value(v)));
    case JSON_INTEGER:
        (void)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return emit_scalar(e, num, false);
    case JSON_REAL:
        (void)snprintf(num, sizeof(num), "%.17g", json_real_value(v));
        return emit_scalar(e, num, false);
    case JSON_TRUE:
        return emit_scalar(e, "true", false);
    case JSON_FALSE:
        return emit_scalar(e, "false", false);
    case JSON_NULL:
    default:
        return emit_scalar(e, "null", false);
    }
}

int output_yaml(const json_t *v, FILE *f)
{
    yaml_emitter_t e;
    yaml_event_t ev;

    if (!yaml_emitter_initialize(&e)) {
        return -ENOMEM;
    }
    yaml_emitter_set_output_file(&e, f);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, -1);
    int r = emit(&e, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
    if (r >= 0) {
        r = emit(&e, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
    }
    if (r >= 0) {
        r = emit_value(&e, v, 0);
    }
    if (r >= 0) {
        r = emit(&e, &ev, yaml_document_end_event_initialize(&ev, 1));
    }
    if (r >= 0) {
        r = emit(&e, &ev, yaml_stream_end_event_initialize(&ev));
    }
    if (r >= 0 && !yaml_emitter_flush(&e)) {
        r = -EIO;
    }
    yaml_emitter_delete(&e);
    return r;
}

/* ---- tables ---- */

struct OutputTable {
    size_t n_cols;
    char **headers; /* owned, n_cols each owned */
    bool *right;    /* owned, n_cols */
    char **cells;   /* owned, n_rows * n_cols each owned */
    size_t n_rows;
};

OutputTable *output_table_free(OutputTable *t)
{
    if (!t) {
        return NULL;
    }
    for (size_t i = 0; t->headers && i < t->n_cols; i++) {
        free(t->headers[i]);
    }
    for (size_t i = 0; t->cells && i < t->n_rows * t->n_cols; i++) {
        free(t->cells[i]);
    }
    free(t->headers);
    free(t->right);
    free(t->cells);
    free(t);
    return NULL;
}

static int table_init(OutputTable *t, size_t n_cols, const char *const *headers)
{
    t->n_cols = n_cols;
    t->headers = calloc(n_cols, sizeof(*t->headers));
    t->right = calloc(n_cols, sizeof(*t->right));
    if (!t->headers || !t->right) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n_cols; i++) {
        if (!(t->headers[i] = strdup(headers[i] ? headers[i] : ""))) {
            return -ENOMEM;
        }
    }
    return 0;
}

OutputTable *output_table_new(size_t n_cols, const char *const *headers)
{
    if (n_cols == 0 || !headers) {
        return NULL;
    }
    OutputTable *t = calloc(1, sizeof(*t));
    if (t && table_init(t, n_cols, headers) < 0) {
        t = output_table_free(t);
    }
    return t;
}

void output_table_align_right(OutputTable *t, size_t col)
{
    if (t && col < t->n_cols) {
        t->right[col] = true;
    }
}

int output_table_add_row(OutputTable *t, const char *const *cells)
{
    if (!t || !cells) {
        return -EINVAL;
    }
    char **n = reallocarray(t->cells, (t->n_rows + 1) * t->n_cols, sizeof(*n));
    if (!n) {
        return -ENOMEM;
    }
    t->cells = n;
    char **row = &t->cells[t->n_rows * t->n_cols];
    for (size_t i = 0; i < t->n_cols; i++) {
        row[i] = strdup(cells[i] ? cells[i] : "");
        if (!row[i]) {
            for (size_t j = 0; j < i; j++) {
                free(row[j]);
            }
            return -ENOMEM;
        }
    }
    t->n_rows++;
    return 0;
}

static void print_border(const OutputTable *t, const size_t *w, FILE *f, const char *title)
{
    size_t len = 1;
    for (size_t c = 0; c < t->n_cols; c++) {
        len += w[c] + 3;
    }
    _cleanup_free_ char *line = malloc(len + 1);
    if (!line) {
        return;
    }
    size_t pos = 0;
    line[pos++] = '+';
    for (size_t c = 0; c < t->n_cols; c++) {
        memset(line + pos, '-', w[c] + 2);
        pos += w[c] + 2;
        line[pos++] = '+';
    }
    line[pos] = '\0';
    if (!title) {
        fprintf(f, "%s\n", line);
        return;
    }
    /* "+ TITLE " then the rest of the border from there on, like patronictl */
    size_t tl = strlen(title) + 2;
    if (1 + tl >= len) {
        fprintf(f, "+ %s +\n", title);
    } else {
        fprintf(f, "+ %s %s\n", title, line + 1 + tl);
    }
}

int output_table_print(const OutputTable *t, const char *title, FILE *f)
{
    if (!t || !f) {
        return -EINVAL;
    }
    _cleanup_free_ size_t *w = calloc(t->n_cols, sizeof(*w));
    if (!w) {
        return -ENOMEM;
    }
    for (size_t c = 0; c < t->n_cols; c++) {
        w[c] = strlen(t->headers[c]);
        for (size_t r = 0; r < t->n_rows; r++) {
            size_t l = strlen(t->cells[r * t->n_cols + c]);
            w[c] = l > w[c] ? l : w[c];
        }
    }
    print_border(t, w, f, title);
    fputc('|', f);
    for (size_t c = 0; c < t->n_cols; c++) {
        fprintf(f, " %-*s |", (int)w[c], t->headers[c]);
    }
    fputc('\n', f);
    print_border(t, w, f, NULL);
    for (size_t r = 0; r < t->n_rows; r++) {
        fputc('|', f);
        for (size_t c = 0; c < t->n_cols; c++) {
            const char *cell = t->cells[r * t->n_cols + c];
            fprintf(f, t->right[c] ? " %*s |" : " %-*s |", (int)w[c], cell);
        }
        fputc('\n', f);
    }
    print_border(t, w, f, NULL);
    return ferror(f) ? -EIO : 0;
}
