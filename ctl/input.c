/* YAML through libyaml's document loader, then a walk that types plain
 * scalars the way PyYAML's YAML 1.1 resolver does (Patroni and patronictl
 * read YAML with PyYAML). JSON is tried first: it is the common case for
 * generated input and jansson reports its errors precisely. */
#include "input.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "macro.h"

/* Room for a scalar's number text. */
#define INPUT_NUMBER_MAX 64

static bool is_one_of(const char *s, const char *const *words, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s, words[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* [-+]?(0|[1-9][0-9_]*) into *ret, underscores dropped. */
static bool plain_int(const char *s, json_int_t *ret)
{
    char buf[INPUT_NUMBER_MAX];
    size_t n = 0;
    const char *p = s;
    if (*p == '-' || *p == '+') {
        buf[n++] = *p++;
    }
    if (*p < '0' || *p > '9' || (*p == '0' && p[1] != '\0')) {
        return false;
    }
    for (; *p; p++) {
        if (*p == '_') {
            continue;
        }
        if (*p < '0' || *p > '9' || n + 1 >= sizeof(buf)) {
            return false;
        }
        buf[n++] = *p;
    }
    buf[n] = '\0';
    char *end = NULL;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno != 0 || !end || *end) {
        return false;
    }
    *ret = (json_int_t)v;
    return true;
}

/* [-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?, as PyYAML's float. */
static bool plain_float(const char *s, double *ret)
{
    char buf[INPUT_NUMBER_MAX];
    size_t n = 0;
    bool dot = false, digit = false;
    const char *p = s;
    if (*p == '-' || *p == '+') {
        buf[n++] = *p++;
    }
    for (; *p && *p != 'e' && *p != 'E'; p++) {
        if (*p == '_') {
            continue;
        }
        if (*p == '.' && !dot) {
            dot = true;
        } else if (*p >= '0' && *p <= '9') {
            digit = true;
        } else {
            return false;
        }
        if (n + 1 >= sizeof(buf)) {
            return false;
        }
        buf[n++] = *p;
    }
    if (!dot || !digit) {
        return false;
    }
    if (*p) {
        /* exponent: e, a sign, digits */
        if ((p[1] != '-' && p[1] != '+') || p[2] < '0' || p[2] > '9' ||
            strspn(p + 2, "0123456789") != strlen(p + 2) || n + strlen(p) + 1 >= sizeof(buf)) {
            return false;
        }
        memcpy(buf + n, p, strlen(p));
        n += strlen(p);
    }
    buf[n] = '\0';
    char *end = NULL;
    double v = strtod(buf, &end);
    if (!end || *end) {
        return false;
    }
    *ret = v;
    return true;
}

static json_t *plain_scalar(const char *s)
{
    static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
    static const char *const yes[] = {
        "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"
    };
    static const char *const no[] = { "false", "False", "FALSE", "no", "No",
                                      "NO",    "off",   "Off",   "OFF" };
    if (is_one_of(s, nulls, ELEMENTSOF(nulls))) {
        return json_null();
    }
    if (is_one_of(s, yes, ELEMENTSOF(yes))) {
        return json_true();
    }
    if (is_one_of(s, no, ELEMENTSOF(no))) {
        return json_false();
    }
    json_int_t i;
    if (plain_int(s, &i)) {
        return json_integer(i);
    }
    double d;
    if (plain_float(s, &d)) {
        return json_real(d);
    }
    return json_string(s);
}

static json_t *node_to_json(yaml_document_t *doc, yaml_node_t *node, unsigned depth, int *ret_err)
{
    if (!node || depth > INPUT_DEPTH_MAX) {
        *ret_err = -EINVAL;
        return NULL;
    }
    switch (node->type) {
    case YAML_SCALAR_NODE: {
        const char *text = (const char *)node->data.scalar.value;
        if (strlen(text) != node->data.scalar.length) {
            *ret_err = -EINVAL; /* a NUL inside */
            return NULL;
        }
        json_t *v = node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? plain_scalar(text)
                                                                       : json_string(text);
        if (!v) {
            *ret_err = -EINVAL; /* not UTF-8 (or out of memory) */
        }
        return v;
    }
    case YAML_SEQUENCE_NODE: {
        json_t *a = json_array();
        for (yaml_node_item_t *it = node->data.sequence.items.start;
             a && it < node->data.sequence.items.top; it++) {
            json_t *v = node_to_json(doc, yaml_document_get_node(doc, *it), depth + 1, ret_err);
            if (!v || json_array_append_new(a, v) < 0) {
                json_decref(a);
                return NULL;
            }
        }
        if (!a) {
            *ret_err = -ENOMEM;
        }
        return a;
    }
    case YAML_MAPPING_NODE: {
        json_t *o = json_object();
        for (yaml_node_pair_t *pair = node->data.mapping.pairs.start;
             o && pair < node->data.mapping.pairs.top; pair++) {
            yaml_node_t *k = yaml_document_get_node(doc, pair->key);
            if (!k || k->type != YAML_SCALAR_NODE ||
                strlen((const char *)k->data.scalar.value) != k->data.scalar.length) {
                *ret_err = -EINVAL;
                json_decref(o);
                return NULL;
            }
            json_t *v =
                node_to_json(doc, yaml_document_get_node(doc, pair->value), depth + 1, ret_err);
            if (!v || json_object_set_new(o, (const char *)k->data.scalar.value, v) < 0) {
                if (v) {
                    *ret_err = -EINVAL; /* a key that is not UTF-8 */
                }
                json_decref(o);
                return NULL;
            }
        }
        if (!o) {
            *ret_err = -ENOMEM;
        }
        return o;
    }
    case YAML_NO_NODE:
    default:
        *ret_err = -EINVAL;
        return NULL;
    }
}

static int parse_yaml(const char *text, size_t len, json_t **ret, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        (void)snprintf(err, errlen, "line %zu, column %zu: %s", parser.problem_mark.line + 1,
                       parser.problem_mark.column + 1, strna(parser.problem));
        yaml_parser_delete(&parser);
        return -EINVAL;
    }
    int r = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        (void)snprintf(err, errlen, "the document is empty");
        r = -ENODATA;
    } else {
        int e = 0;
        json_t *v = node_to_json(&doc, root, 0, &e);
        if (!v) {
            r = e < 0 ? e : -EINVAL;
            if (r == -EINVAL) {
                (void)snprintf(err, errlen,
                               "unsupported YAML (a non-scalar key, invalid UTF-8, or nesting "
                               "deeper than %d)",
                               INPUT_DEPTH_MAX);
            }
        } else {
            *ret = v;
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return r;
}

int input_parse_document(const char *text, size_t len, json_t **ret, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    json_error_t je;
    json_t *v = json_loadb(text, len, 0, &je);
    if (v) {
        *ret = v;
        return 0;
    }
    return parse_yaml(text, len, ret, err, errlen);
}

int input_read_file(const char *path, size_t max_bytes, char **ret, size_t *ret_len)
{
    bool is_stdin = strcmp(path, "-") == 0;
    int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    _cleanup_free_ char *buf = malloc(max_bytes + 1);
    size_t n = 0;
    int r = buf ? 0 : -ENOMEM;
    while (r == 0) {
        if (n == max_bytes) {
            char probe;
            ssize_t k = read(fd, &probe, 1);
            r = k > 0 ? -EFBIG : k < 0 ? -errno : 0;
            break;
        }
        ssize_t k = read(fd, buf + n, max_bytes - n);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            r = -errno;
        } else if (k == 0) {
            break;
        } else {
            n += (size_t)k;
        }
    }
    if (!is_stdin) {
        close(fd);
    }
    if (r < 0) {
        return r;
    }
    buf[n] = '\0';
    *ret = TAKE_PTR(buf);
    *ret_len = n;
    return 0;
}
