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

/* Skips min to max digits at *p; false when there are fewer than min. */
static bool skip_digits(const char **p, size_t min, size_t max)
{
    size_t n = 0;
    while (n < max && (*p)[n] >= '0' && (*p)[n] <= '9') {
        n++;
    }
    *p += n;
    return n >= min;
}

/* PyYAML's resolver regexp for tag:yaml.org,2002:timestamp, whole string:
 * YYYY-MM-DD, or YYYY-M-D, then T, t or blanks, H:MM:SS, an optional
 * fraction and an optional zone (blanks, then Z or +H, +HH:MM). */
static bool yaml_is_timestamp(const char *s)
{
    const char *p = s;
    if (!skip_digits(&p, 4, 4) || *p++ != '-') {
        return false;
    }
    const char *month = p;
    if (!skip_digits(&p, 1, 2) || *p++ != '-') {
        return false;
    }
    const char *day = p;
    if (!skip_digits(&p, 1, 2)) {
        return false;
    }
    if (!*p) {
        return day - month == 3 && p - day == 2; /* the date alone: YYYY-MM-DD */
    }
    if (*p == 'T' || *p == 't') {
        p++;
    } else if (*p == ' ' || *p == '\t') {
        p += strspn(p, " \t");
    } else {
        return false;
    }
    if (!skip_digits(&p, 1, 2) || *p++ != ':' || !skip_digits(&p, 2, 2) || *p++ != ':' ||
        !skip_digits(&p, 2, 2)) {
        return false;
    }
    if (*p == '.') {
        p++;
        p += strspn(p, "0123456789");
    }
    p += strspn(p, " \t");
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        p++;
        if (!skip_digits(&p, 1, 2)) {
            return false;
        }
        if (*p == ':') {
            p++;
            if (!skip_digits(&p, 2, 2)) {
                return false;
            }
        }
    }
    return *p == '\0';
}

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
     * reads them as dates */
    if (yaml_is_timestamp(s)) {
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

/* How a document is emitted: output_yaml keeps the objects' order in block
 * style; patronictl's tables and -f yaml print what PyYAML's safe_dump
 * prints, keys sorted, and a Tags cell of -f tsv in flow style. */
typedef struct EmitStyle {
    bool flow;
    bool sort_keys;
} EmitStyle;

static int compare_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int emit_value(yaml_emitter_t *e, const json_t *v, const EmitStyle *style, unsigned depth);

static int emit_object(yaml_emitter_t *e, const json_t *v, const EmitStyle *style, unsigned depth)
{
    yaml_event_t ev;
    size_t n = json_object_size(v), i = 0;
    _cleanup_free_ const char **keys = calloc(n ? n : 1, sizeof(*keys));
    if (!keys) {
        return -ENOMEM;
    }
    const char *key;
    json_t *child;
    json_object_foreach((json_t *)v, key, child)
    {
        keys[i++] = key;
    }
    if (style->sort_keys) {
        qsort(keys, n, sizeof(*keys), compare_keys);
    }
    int r = emit(e, &ev,
                 yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                                     style->flow ? YAML_FLOW_MAPPING_STYLE
                                                                 : YAML_BLOCK_MAPPING_STYLE));
    for (i = 0; i < n && r >= 0; i++) {
        r = emit_scalar(e, keys[i], yaml_needs_quotes(keys[i]));
        if (r >= 0) {
            r = emit_value(e, json_object_get(v, keys[i]), style, depth + 1);
        }
    }
    return r < 0 ? r : emit(e, &ev, yaml_mapping_end_event_initialize(&ev));
}

static int emit_value(yaml_emitter_t *e, const json_t *v, const EmitStyle *style, unsigned depth)
{
    yaml_event_t ev;
    char num[OUTPUT_NUMBER_MAX];
    int r;

    if (depth > OUTPUT_DEPTH_MAX) {
        return -ELOOP;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return emit_object(e, v, style, depth);
    case JSON_ARRAY: {
        r = emit(e, &ev,
                 yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                                      style->flow ? YAML_FLOW_SEQUENCE_STYLE
                                                                  : YAML_BLOCK_SEQUENCE_STYLE));
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child)
        {
            if (r >= 0) {
                r = emit_value(e, child, style, depth + 1);
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

static int emit_document(const json_t *v, const EmitStyle *style, FILE *f)
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
        r = emit_value(&e, v, style, 0);
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

int output_yaml(const json_t *v, FILE *f)
{
    return emit_document(v, &(EmitStyle){ 0 }, f);
}

int output_yaml_text(const json_t *v, bool flow, char **ret)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) {
        return -ENOMEM;
    }
    int r = emit_document(v, &(EmitStyle){ .flow = flow, .sort_keys = true }, f);
    if (fclose(f) != 0 && r >= 0) {
        r = -ENOMEM;
    }
    if (r < 0) {
        free(buf);
        return r;
    }
    /* PyYAML's text .strip()ped, as patronictl puts it into a cell */
    while (size > 0 && (buf[size - 1] == '\n' || buf[size - 1] == ' ')) {
        buf[--size] = '\0';
    }
    *ret = buf;
    return 0;
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

/* The width of the longest line of a cell. */
static size_t cell_width(const char *cell)
{
    size_t w = 0;
    for (const char *line = cell; line;) {
        const char *nl = strchr(line, '\n');
        size_t l = nl ? (size_t)(nl - line) : strlen(line);
        w = l > w ? l : w;
        line = nl ? nl + 1 : NULL;
    }
    return w;
}

static size_t cell_lines(const char *cell)
{
    size_t n = 1;
    for (const char *p = strchr(cell, '\n'); p; p = strchr(p + 1, '\n')) {
        n++;
    }
    return n;
}

/* Line k of a cell (empty past its last line), as a pointer and a length. */
static const char *cell_line(const char *cell, size_t k, int *ret_len)
{
    const char *line = cell;
    for (size_t i = 0; i < k && line; i++) {
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    if (!line) {
        *ret_len = 0;
        return "";
    }
    const char *nl = strchr(line, '\n');
    *ret_len = (int)(nl ? (size_t)(nl - line) : strlen(line));
    return line;
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
    /* prettytable's hrules=ALL, as patronictl asks for it: a rule under
     * every row when a cell spans several lines */
    bool multiline = false;
    for (size_t c = 0; c < t->n_cols; c++) {
        w[c] = strlen(t->headers[c]);
        for (size_t r = 0; r < t->n_rows; r++) {
            const char *cell = t->cells[r * t->n_cols + c];
            size_t l = cell_width(cell);
            w[c] = l > w[c] ? l : w[c];
            multiline = multiline || strchr(cell, '\n');
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
        size_t height = 1;
        for (size_t c = 0; c < t->n_cols; c++) {
            size_t h = cell_lines(t->cells[r * t->n_cols + c]);
            height = h > height ? h : height;
        }
        for (size_t k = 0; k < height; k++) {
            fputc('|', f);
            for (size_t c = 0; c < t->n_cols; c++) {
                int len;
                const char *line = cell_line(t->cells[r * t->n_cols + c], k, &len);
                int pad = (int)w[c] - len;
                if (t->right[c]) {
                    fprintf(f, " %*s%.*s |", pad, "", len, line);
                } else {
                    fprintf(f, " %.*s%*s |", len, line, pad, "");
                }
            }
            fputc('\n', f);
        }
        if (multiline && r + 1 < t->n_rows) {
            print_border(t, w, f, NULL);
        }
    }
    print_border(t, w, f, NULL);
    return ferror(f) ? -EIO : 0;
}

/* ---- patronictl's --format ---- */

static const char *const output_format_table[_OUTPUT_FORMAT_MAX] = {
    [OUTPUT_FORMAT_PRETTY] = "pretty",
    [OUTPUT_FORMAT_TSV] = "tsv",
    [OUTPUT_FORMAT_JSON] = "json",
    [OUTPUT_FORMAT_YAML] = "yaml",
};

const char *output_format_to_string(OutputFormat f)
{
    return f >= 0 && f < _OUTPUT_FORMAT_MAX ? output_format_table[f] : NULL;
}

OutputFormat output_format_from_string(const char *s)
{
    if (!s) {
        return _OUTPUT_FORMAT_INVALID;
    }
    for (int i = 0; i < _OUTPUT_FORMAT_MAX; i++) {
        if (strcmp(s, output_format_table[i]) == 0) {
            return (OutputFormat)i;
        }
    }
    /* patronictl reads yml as yaml; table is dbctl's name for pretty */
    if (strcmp(s, "yml") == 0) {
        return OUTPUT_FORMAT_YAML;
    }
    if (strcmp(s, "table") == 0) {
        return OUTPUT_FORMAT_PRETTY;
    }
    return _OUTPUT_FORMAT_INVALID;
}

int output_cell_text(const json_t *cell, bool flow, char **ret)
{
    char *s = NULL;
    if (!cell || json_is_null(cell)) {
        s = strdup("");
    } else if (json_is_string(cell)) {
        s = strdup(json_string_value(cell));
    } else if (json_is_integer(cell)) {
        if (asprintf(&s, "%" JSON_INTEGER_FORMAT, json_integer_value(cell)) < 0) {
            s = NULL;
        }
    } else if (json_is_object(cell) || json_is_array(cell)) {
        return output_yaml_text(cell, flow, ret);
    } else if (json_is_true(cell) || json_is_false(cell)) {
        /* Python's str() of a bool */
        s = strdup(json_is_true(cell) ? "True" : "False");
    } else {
        if (asprintf(&s, "%.17g", json_real_value(cell)) < 0) {
            s = NULL;
        }
    }
    if (!s) {
        return -ENOMEM;
    }
    *ret = s;
    return 0;
}

/* A cell patronictl leaves out of a JSON or YAML row: str(v) is empty. */
static bool cell_empty(const json_t *cell)
{
    return !cell || json_is_null(cell) || (json_is_string(cell) && !*json_string_value(cell));
}

static int print_tsv(const char *const *columns, size_t n_cols, const json_t *rows, FILE *f)
{
    for (size_t c = 0; c < n_cols; c++) {
        fprintf(f, "%s%s", c ? "\t" : "", columns[c]);
    }
    fputc('\n', f);
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        for (size_t c = 0; c < n_cols; c++) {
            _cleanup_free_ char *text = NULL;
            int r = output_cell_text(json_array_get(row, c), true, &text);
            if (r < 0) {
                return r;
            }
            fprintf(f, "%s%s", c ? "\t" : "", text);
        }
        fputc('\n', f);
    }
    return ferror(f) ? -EIO : 0;
}

int output_rows(OutputFormat fmt, const char *const *columns, size_t n_cols, const json_t *rows,
                bool drop_empty, FILE *f)
{
    if (!columns || !json_is_array(rows) || !f) {
        return -EINVAL;
    }
    if (fmt == OUTPUT_FORMAT_TSV) {
        return print_tsv(columns, n_cols, rows, f);
    }
    if (fmt != OUTPUT_FORMAT_JSON && fmt != OUTPUT_FORMAT_YAML) {
        return -EINVAL;
    }
    json_auto_t *list = json_array();
    if (!list) {
        return -ENOMEM;
    }
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        json_t *o = json_object();
        if (!o || json_array_append_new(list, o) < 0) {
            return -ENOMEM;
        }
        for (size_t c = 0; c < n_cols; c++) {
            json_t *cell = json_array_get(row, c);
            if (drop_empty && cell_empty(cell)) {
                continue;
            }
            if (json_object_set_new(o, columns[c], cell ? json_incref(cell) : json_string("")) <
                0) {
                return -ENOMEM;
            }
        }
    }
    if (fmt == OUTPUT_FORMAT_YAML) {
        /* click.echo() adds a newline to safe_dump's text, which ends in one */
        int r = emit_document(list, &(EmitStyle){ .sort_keys = true }, f);
        return r < 0 ? r : fputc('\n', f) == EOF ? -EIO : 0;
    }
    /* Python's json.dumps: ", " and ": " between items, ASCII only */
    char *s = json_dumps(list, JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    if (!s) {
        return -ENOMEM;
    }
    int r = fprintf(f, "%s\n", s) < 0 ? -EIO : 0;
    free(s);
    return r;
}
