#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct {
  const char *s;
  size_t len, pos;
  char *err;
  size_t err_len;
  int depth;
} parser;

static void *fail(parser *p, const char *what) {
  snprintf(p->err, p->err_len, "%s at byte %zu", what, p->pos);
  return NULL;
}

static void skip_ws(parser *p) {
  while (p->pos < p->len) {
    char c = p->s[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    p->pos++;
  }
}

static json_value *node(json_type t) {
  json_value *v = calloc(1, sizeof *v);
  if (v) v->type = t;
  return v;
}

static bool literal(parser *p, const char *word) {
  size_t n = strlen(word);
  if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) return false;
  p->pos += n;
  return true;
}

static int hex4(parser *p, unsigned *out) {
  if (p->len - p->pos < 4) return 0;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p->s[p->pos + i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return 0;
  }
  p->pos += 4;
  *out = v;
  return 1;
}

static size_t utf8(unsigned cp, char *out) {
  if (cp < 0x80) { out[0] = (char)cp; return 1; }
  if (cp < 0x800) { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | cp >> 12); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F)); return 3;
  }
  out[0] = (char)(0xF0 | cp >> 18); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

/* p->pos is just past the opening quote. */
static char *string(parser *p) {
  /* Decoded text is never longer than the source. */
  char *out = malloc(p->len - p->pos + 1);
  if (!out) return fail(p, "out of memory");
  size_t n = 0;
  while (p->pos < p->len) {
    unsigned char c = (unsigned char)p->s[p->pos++];
    if (c == '"') { out[n] = 0; return out; }
    if (c < 0x20) { free(out); return fail(p, "control character in string"); }
    if (c != '\\') { out[n++] = (char)c; continue; }
    if (p->pos >= p->len) break;
    char e = p->s[p->pos++];
    switch (e) {
      case '"': out[n++] = '"'; break;
      case '\\': out[n++] = '\\'; break;
      case '/': out[n++] = '/'; break;
      case 'b': out[n++] = '\b'; break;
      case 'f': out[n++] = '\f'; break;
      case 'n': out[n++] = '\n'; break;
      case 'r': out[n++] = '\r'; break;
      case 't': out[n++] = '\t'; break;
      case 'u': {
        unsigned cp, lo;
        if (!hex4(p, &cp)) { free(out); return fail(p, "bad \\u escape"); }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (!literal(p, "\\u") || !hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
            free(out); return fail(p, "unpaired surrogate");
          }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          free(out); return fail(p, "unpaired surrogate");
        }
        if (cp == 0) { free(out); return fail(p, "\\u0000 in string"); }
        n += utf8(cp, out + n);
        break;
      }
      default: free(out); return fail(p, "bad escape");
    }
  }
  free(out);
  return fail(p, "unterminated string");
}

static json_value *value(parser *p);

static bool push(json_value *v, json_value *item, char *key) {
  json_value **items = realloc(v->items, (v->len + 1) * sizeof *items);
  if (!items) return false;
  v->items = items;
  if (v->type == JSON_OBJECT) {
    char **keys = realloc(v->keys, (v->len + 1) * sizeof *keys);
    if (!keys) return false;
    v->keys = keys;
    v->keys[v->len] = key;
  }
  v->items[v->len++] = item;
  return true;
}

static json_value *container(parser *p, json_type t, char close) {
  if (++p->depth > MAX_DEPTH) return fail(p, "nested too deeply");
  json_value *v = node(t);
  if (!v) return fail(p, "out of memory");
  skip_ws(p);
  if (p->pos < p->len && p->s[p->pos] == close) { p->pos++; p->depth--; return v; }
  for (;;) {
    char *key = NULL;
    skip_ws(p);
    if (t == JSON_OBJECT) {
      if (p->pos >= p->len || p->s[p->pos] != '"') { json_free(v); return fail(p, "expected a string key"); }
      p->pos++;
      if (!(key = string(p))) { json_free(v); return NULL; }
      skip_ws(p);
      if (p->pos >= p->len || p->s[p->pos] != ':') { free(key); json_free(v); return fail(p, "expected `:`"); }
      p->pos++;
    }
    json_value *item = value(p);
    if (!item) { free(key); json_free(v); return NULL; }
    if (!push(v, item, key)) { free(key); json_free(item); json_free(v); return fail(p, "out of memory"); }
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ',') { p->pos++; continue; }
    if (p->pos < p->len && p->s[p->pos] == close) { p->pos++; p->depth--; return v; }
    json_free(v);
    return fail(p, t == JSON_OBJECT ? "expected `,` or `}`" : "expected `,` or `]`");
  }
}

static json_value *number(parser *p) {
  size_t start = p->pos;
  if (p->pos < p->len && p->s[p->pos] == '-') p->pos++;
  size_t digits = p->pos;
  while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
  if (p->pos == digits) return fail(p, "unexpected character");
  if (p->pos < p->len && p->s[p->pos] == '.') {
    p->pos++;
    size_t frac = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    if (p->pos == frac) return fail(p, "bad number");
  }
  if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
    p->pos++;
    if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
    size_t exp = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    if (p->pos == exp) return fail(p, "bad number");
  }
  char buf[64];
  size_t n = p->pos - start;
  if (n >= sizeof buf) return fail(p, "number too long");
  memcpy(buf, p->s + start, n);
  buf[n] = 0;
  json_value *v = node(JSON_NUMBER);
  if (!v) return fail(p, "out of memory");
  v->number = strtod(buf, NULL);
  return v;
}

static json_value *value(parser *p) {
  skip_ws(p);
  if (p->pos >= p->len) return fail(p, "unexpected end of input");
  char c = p->s[p->pos];
  json_value *v;
  switch (c) {
    case '{': p->pos++; return container(p, JSON_OBJECT, '}');
    case '[': p->pos++; return container(p, JSON_ARRAY, ']');
    case '"': {
      p->pos++;
      char *s = string(p);
      if (!s) return NULL;
      if (!(v = node(JSON_STRING))) { free(s); return fail(p, "out of memory"); }
      v->string = s;
      return v;
    }
    case 't': case 'f':
      if (literal(p, "true") || literal(p, "false")) {
        if (!(v = node(JSON_BOOL))) return fail(p, "out of memory");
        v->boolean = c == 't';
        return v;
      }
      return fail(p, "unexpected character");
    case 'n':
      if (literal(p, "null")) return node(JSON_NULL);
      return fail(p, "unexpected character");
    default:
      return number(p);
  }
}

json_value *json_parse(const char *text, size_t len, char *err, size_t err_len) {
  parser p = {text, len, 0, err, err_len, 0};
  json_value *v = value(&p);
  if (!v) return NULL;
  skip_ws(&p);
  if (p.pos != p.len) { json_free(v); return fail(&p, "trailing characters"); }
  return v;
}

void json_free(json_value *v) {
  if (!v) return;
  for (size_t i = 0; i < v->len; i++) {
    json_free(v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->string);
  free(v);
}

json_value *json_get(const json_value *object, const char *key) {
  if (!object || object->type != JSON_OBJECT) return NULL;
  for (size_t i = 0; i < object->len; i++)
    if (strcmp(object->keys[i], key) == 0) return object->items[i];
  return NULL;
}
