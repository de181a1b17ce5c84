/* json.h - a small JSON reader for the tools (config.json, tokenizer.json, safetensors headers).
 *
 * json_parse() validates the whole text (RFC 8259 grammar) and builds a flat array of nodes in
 * document order; nothing is decoded until asked. It never recurses (an explicit stack bounded by
 * JSON_MAX_DEPTH), checks every index against the text length, and refuses: nesting deeper than
 * the limit, control characters inside strings, bad escapes, \u escapes that are lone or
 * mismatched UTF-16 surrogates, malformed numbers, trailing commas and anything after the value.
 * Strings are decoded on demand (escapes and surrogate pairs to UTF-8; other bytes are copied
 * as they are).
 *
 *   json_doc d;
 *   if (json_parse(&d, text, len) != 0) puts(d.error);
 *   size_t v = json_get(&d, JSON_ROOT, "vocab_size");       JSON_NONE if absent
 *   for (k = json_first(&d, obj); k != JSON_NONE; k = json_next(&d, k))
 *       ... arrays: k is an element; objects: k is a key and k + 1 its value
 *   json_free(&d);
 *
 * The text is borrowed and must outlive the document.
 */
#ifndef TFM_TOOLS_JSON_H
#define TFM_TOOLS_JSON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef JSON_MAX_DEPTH
#define JSON_MAX_DEPTH 128
#endif

#define JSON_NONE ((size_t)-1)
#define JSON_ROOT ((size_t)0)

typedef enum { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct {
    json_type type;
    size_t start, len;  /* text span; strings: between the quotes, still escaped */
    size_t parent;      /* JSON_NONE for the root */
    size_t next;        /* index of the first node after this one's subtree */
    size_t count;       /* arrays: elements, objects: key/value pairs */
} json_node;

typedef struct {
    const char *text;
    size_t len;
    json_node *nodes;   /* [n] in document order; an object's key node precedes its value */
    size_t n, cap;
    char error[128];
} json_doc;

/* ------------------------------------------------------------------ parser */

static inline int json__fail(json_doc *d, const char *what, size_t at) {
    snprintf(d->error, sizeof d->error, "JSON: %s at byte %llu", what, (unsigned long long)at);
    return -1;
}

static inline size_t json__add(json_doc *d, json_type t, size_t start, size_t parent) {
    json_node *nd;
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 256;
        json_node *nn = (json_node *)realloc(d->nodes, cap * sizeof *nn);
        if (!nn) return JSON_NONE;
        d->nodes = nn;
        d->cap = cap;
    }
    nd = &d->nodes[d->n];
    nd->type = t; nd->start = start; nd->len = 0; nd->parent = parent; nd->next = d->n + 1; nd->count = 0;
    if (parent != JSON_NONE) d->nodes[parent].count++;
    return d->n++;
}

static inline int json__hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* Scans a string starting after its opening quote; *pos ends after the closing quote. */
static inline int json__scan_string(json_doc *d, size_t *pos) {
    const char *t = d->text;
    size_t i = *pos, n = d->len;
    while (i < n) {
        unsigned char c = (unsigned char)t[i];
        if (c == '"') { *pos = i + 1; return 0; }
        if (c < 0x20) return json__fail(d, "control character in string", i);
        if (c != '\\') { i++; continue; }
        if (i + 1 >= n) break;
        c = (unsigned char)t[i + 1];
        if (c == 'u') {
            unsigned u, lo;
            if (n - i < 6 || json__hex4(t + i + 2, &u)) return json__fail(d, "bad \\u escape", i);
            i += 6;
            if (u >= 0xDC00 && u <= 0xDFFF) return json__fail(d, "lone low surrogate", i - 6);
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (n - i < 6 || t[i] != '\\' || t[i + 1] != 'u' || json__hex4(t + i + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return json__fail(d, "high surrogate without its low half", i - 6);
                i += 6;
            }
        } else if (strchr("\"\\/bfnrt", c) && c) i += 2;
        else return json__fail(d, "bad escape", i);
    }
    return json__fail(d, "unterminated string", *pos - 1);
}

static inline int json__scan_number(json_doc *d, size_t *pos) {
    const char *t = d->text;
    size_t i = *pos, n = d->len, digits;
    if (i < n && t[i] == '-') i++;
    if (i < n && t[i] == '0') i++;
    else if (i < n && t[i] >= '1' && t[i] <= '9') { while (i < n && t[i] >= '0' && t[i] <= '9') i++; }
    else return json__fail(d, "bad number", *pos);
    if (i < n && t[i] == '.') {
        for (digits = 0, i++; i < n && t[i] >= '0' && t[i] <= '9'; i++) digits++;
        if (!digits) return json__fail(d, "no digits after the decimal point", i);
    }
    if (i < n && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < n && (t[i] == '+' || t[i] == '-')) i++;
        for (digits = 0; i < n && t[i] >= '0' && t[i] <= '9'; i++) digits++;
        if (!digits) return json__fail(d, "no digits in the exponent", i);
    }
    *pos = i;
    return 0;
}

static inline size_t json__skip_ws(const json_doc *d, size_t i) {
    while (i < d->len && (d->text[i] == ' ' || d->text[i] == '\t' || d->text[i] == '\n' || d->text[i] == '\r')) i++;
    return i;
}

/* Parses one scalar or opens a container at *pos; *node gets its index. */
static inline int json__value(json_doc *d, size_t *pos, size_t parent, size_t *node) {
    size_t i = *pos, start;
    json_type t;
    char c;
    if (i >= d->len) return json__fail(d, "value expected, end of text found", i);
    c = d->text[i];
    start = i;
    if (c == '{' || c == '[') t = c == '{' ? JSON_OBJECT : JSON_ARRAY, i++;
    else if (c == '"') {
        i++;
        if (json__scan_string(d, &i)) return -1;
        t = JSON_STRING;
        start++;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        if (json__scan_number(d, &i)) return -1;
        t = JSON_NUMBER;
    } else if (d->len - i >= 4 && memcmp(d->text + i, "true", 4) == 0) t = JSON_TRUE, i += 4;
    else if (d->len - i >= 5 && memcmp(d->text + i, "false", 5) == 0) t = JSON_FALSE, i += 5;
    else if (d->len - i >= 4 && memcmp(d->text + i, "null", 4) == 0) t = JSON_NULL, i += 4;
    else return json__fail(d, "unexpected character", i);
    if ((*node = json__add(d, t, start, parent)) == JSON_NONE) return json__fail(d, "out of memory", i);
    d->nodes[*node].len = t == JSON_STRING ? i - 1 - start : i - start;
    *pos = i;
    return 0;
}

/* After a value inside a container: handles ',' and closing brackets. Returns 1 when another
   member follows (object: its key and ':' are already parsed), 0 when the document is complete,
   -1 on error. *top is the innermost open container. */
static inline int json__after_value(json_doc *d, size_t *pos, size_t *stack, int *depth) {
    for (;;) {
        size_t i = json__skip_ws(d, *pos), top;
        char close;
        if (*depth == 0) {
            if (i != d->len) return json__fail(d, "text after the JSON value", i);
            return 0;
        }
        top = stack[*depth - 1];
        close = d->nodes[top].type == JSON_OBJECT ? '}' : ']';
        if (i < d->len && d->text[i] == ',') { *pos = i + 1; return 1; }
        if (i < d->len && d->text[i] == close) {
            d->nodes[top].next = d->n;
            d->nodes[top].len = i + 1 - d->nodes[top].start;
            (*depth)--;
            *pos = i + 1;
            continue;
        }
        return json__fail(d, i < d->len ? "',' or closing bracket expected" : "unterminated array or object", i);
    }
}

/* Parses an object key and its ':' (position at the key's quote). */
static inline int json__key(json_doc *d, size_t *pos, size_t obj) {
    size_t i = json__skip_ws(d, *pos), key;
    if (i >= d->len || d->text[i] != '"') return json__fail(d, "string key expected", i);
    if (json__value(d, &i, obj, &key)) return -1;
    d->nodes[obj].count--; /* count pairs, not keys and values */
    i = json__skip_ws(d, i);
    if (i >= d->len || d->text[i] != ':') return json__fail(d, "':' expected", i);
    *pos = i + 1;
    return 0;
}

static inline void json_free(json_doc *d) {
    free(d->nodes);
    d->nodes = NULL;
    d->n = d->cap = 0;
}

static inline int json_parse(json_doc *d, const char *text, size_t len) {
    size_t stack[JSON_MAX_DEPTH], pos = 0, node;
    int depth = 0, more;
    memset(d, 0, sizeof *d);
    d->text = text;
    d->len = len;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) pos = 3; /* UTF-8 byte order mark */
    for (;;) {
        size_t parent = depth ? stack[depth - 1] : JSON_NONE;
        pos = json__skip_ws(d, pos);
        if (json__value(d, &pos, parent, &node)) break;
        if (d->nodes[node].type == JSON_OBJECT || d->nodes[node].type == JSON_ARRAY) {
            char close = d->nodes[node].type == JSON_OBJECT ? '}' : ']';
            size_t i = json__skip_ws(d, pos);
            if (depth == JSON_MAX_DEPTH) { json__fail(d, "nesting too deep", pos); break; }
            if (i < d->len && d->text[i] == close) { /* empty container */
                d->nodes[node].len = i + 1 - d->nodes[node].start;
                pos = i + 1;
            } else {
                stack[depth++] = node;
                if (d->nodes[node].type == JSON_OBJECT && json__key(d, &pos, node)) break;
                continue;
            }
        }
        more = json__after_value(d, &pos, stack, &depth);
        if (more < 0) break;
        if (more == 0) return 0;
        if (d->nodes[stack[depth - 1]].type == JSON_OBJECT && json__key(d, &pos, stack[depth - 1])) break;
    }
    json_free(d);
    return -1;
}

/* ------------------------------------------------------------------ navigation */

static inline json_type json_type_of(const json_doc *d, size_t node) { return d->nodes[node].type; }

/* First element of an array, or first key of an object; JSON_NONE if empty or a scalar. */
static inline size_t json_first(const json_doc *d, size_t node) {
    if (node == JSON_NONE || node >= d->n) return JSON_NONE;
    if ((d->nodes[node].type != JSON_ARRAY && d->nodes[node].type != JSON_OBJECT) || d->nodes[node].count == 0) return JSON_NONE;
    return node + 1;
}

/* The member after `k` (an array element, or an object key) in the same container. */
static inline size_t json_next(const json_doc *d, size_t k) {
    size_t parent, after;
    if (k == JSON_NONE || k >= d->n || (parent = d->nodes[k].parent) == JSON_NONE) return JSON_NONE;
    after = d->nodes[parent].type == JSON_OBJECT ? d->nodes[k + 1].next : d->nodes[k].next;
    return after < d->nodes[parent].next ? after : JSON_NONE;
}

/* Does string node `node` decode to the n bytes s? */
static inline int json_eqn(const json_doc *d, size_t node, const char *s, size_t n);

/* The value of `key` in object `obj` (the first if repeated), or JSON_NONE. */
static inline size_t json_get(const json_doc *d, size_t obj, const char *key) {
    size_t k;
    if (obj == JSON_NONE || obj >= d->n || d->nodes[obj].type != JSON_OBJECT) return JSON_NONE;
    for (k = json_first(d, obj); k != JSON_NONE; k = json_next(d, k))
        if (json_eqn(d, k, key, strlen(key))) return k + 1;
    return JSON_NONE;
}

/* ------------------------------------------------------------------ values */

static inline size_t json__put_utf8(unsigned cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 63)); out[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 63));
    out[2] = (char)(0x80 | ((cp >> 6) & 63)); out[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* Decodes string node `node` into out (room for at least its raw length + 1 bytes; decoding
   never grows a string); returns the decoded length, out is NUL-terminated. The parser has
   already validated every escape. */
static inline size_t json__decode(const json_doc *d, size_t node, char *out) {
    const char *s = d->text + d->nodes[node].start;
    size_t n = d->nodes[node].len, i = 0, k = 0;
    while (i < n) {
        unsigned cp = 0, lo = 0xDC00;
        if (s[i] != '\\') { out[k++] = s[i++]; continue; }
        switch (s[i + 1]) {
        case 'b': out[k++] = '\b'; break;
        case 'f': out[k++] = '\f'; break;
        case 'n': out[k++] = '\n'; break;
        case 'r': out[k++] = '\r'; break;
        case 't': out[k++] = '\t'; break;
        case 'u':
            json__hex4(s + i + 2, &cp);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                json__hex4(s + i + 8, &lo);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            k += json__put_utf8(cp, out + k);
            i += 4;
            break;
        default: out[k++] = s[i + 1]; break; /* " \ / */
        }
        i += 2;
    }
    out[k] = 0;
    return k;
}

/* A malloc'd, NUL-terminated copy of a string node (NULL if not a string or out of memory). */
static inline char *json_strdup(const json_doc *d, size_t node, size_t *len) {
    char *out;
    size_t n;
    if (node == JSON_NONE || node >= d->n || d->nodes[node].type != JSON_STRING) return NULL;
    if (!(out = (char *)malloc(d->nodes[node].len + 1))) return NULL;
    n = json__decode(d, node, out);
    if (len) *len = n;
    return out;
}

static inline int json_eqn(const json_doc *d, size_t node, const char *s, size_t n) {
    const json_node *nd;
    char small[256], *buf;
    size_t len;
    int eq;
    if (node == JSON_NONE || node >= d->n || d->nodes[node].type != JSON_STRING) return 0;
    nd = &d->nodes[node];
    if (!memchr(d->text + nd->start, '\\', nd->len)) return nd->len == n && memcmp(d->text + nd->start, s, n) == 0;
    if (n > nd->len) return 0;
    buf = nd->len < sizeof small ? small : (char *)malloc(nd->len + 1);
    if (!buf) return 0;
    len = json__decode(d, node, buf);
    eq = len == n && memcmp(buf, s, n) == 0;
    if (buf != small) free(buf);
    return eq;
}

static inline int json_eq(const json_doc *d, size_t node, const char *s) { return json_eqn(d, node, s, strlen(s)); }

/* A number node as a double (1 on success; out of range values become +-inf or 0). */
static inline int json_number(const json_doc *d, size_t node, double *out) {
    char small[64], *buf;
    const json_node *nd;
    if (node == JSON_NONE || node >= d->n || d->nodes[node].type != JSON_NUMBER) return 0;
    nd = &d->nodes[node];
    /* copied because the text need not be NUL-terminated */
    buf = nd->len < sizeof small ? small : (char *)malloc(nd->len + 1);
    if (!buf) return 0;
    memcpy(buf, d->text + nd->start, nd->len);
    buf[nd->len] = 0;
    *out = strtod(buf, NULL);
    if (buf != small) free(buf);
    return 1;
}

/* An integral number node within [lo, hi] as int64 (1 on success). Plain digit strings are
   read exactly (any int64); with a fraction or exponent the value must be integral and within
   2^53, where doubles are exact. */
static inline int json_int(const json_doc *d, size_t node, int64_t lo, int64_t hi, int64_t *out) {
    const json_node *nd;
    const char *t;
    size_t i = 0;
    uint64_t mag = 0, limit;
    int neg;
    double v;
    if (node == JSON_NONE || node >= d->n || d->nodes[node].type != JSON_NUMBER) return 0;
    nd = &d->nodes[node];
    t = d->text + nd->start;
    neg = t[0] == '-';
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (i = (size_t)neg; i < nd->len && t[i] >= '0' && t[i] <= '9'; i++) {
        unsigned digit = (unsigned)(t[i] - '0');
        if (mag > (limit - digit) / 10) return 0; /* overflows int64 */
        mag = mag * 10 + digit;
    }
    if (i == nd->len) {
        int64_t x = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
        if (x < lo || x > hi) return 0;
        *out = x;
        return 1;
    }
    if (!json_number(d, node, &v) || !(v >= -9007199254740992.0 && v <= 9007199254740992.0)) return 0;
    if (v != (double)(int64_t)v || (int64_t)v < lo || (int64_t)v > hi) return 0;
    *out = (int64_t)v;
    return 1;
}

/* true/false node (1 on success). */
static inline int json_bool(const json_doc *d, size_t node, int *out) {
    if (node == JSON_NONE || node >= d->n || (d->nodes[node].type != JSON_TRUE && d->nodes[node].type != JSON_FALSE)) return 0;
    *out = d->nodes[node].type == JSON_TRUE;
    return 1;
}

#endif /* TFM_TOOLS_JSON_H */
