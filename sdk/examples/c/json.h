/* A small JSON reader for plugin configs: parses a whole document into a
 * tree of json_value nodes. Configs are small and parsed once per instance,
 * so it favours clarity over speed. Strings are decoded to UTF-8 (\u escapes
 * and surrogate pairs included) and NUL-terminated; a string holding a \u0000
 * is refused rather than silently truncated. */
#ifndef SLUICE_EXAMPLE_JSON_H
#define SLUICE_EXAMPLE_JSON_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value json_value;
struct json_value {
  json_type type;
  bool boolean;
  double number;
  char *string;        /* JSON_STRING */
  size_t len;          /* items of an array or object */
  json_value **items;  /* JSON_ARRAY items, JSON_OBJECT values */
  char **keys;         /* JSON_OBJECT keys, same order as the text */
};

/* Parses `len` bytes of `text`. On failure returns NULL and writes a message
 * into `err` (`err_len` bytes). */
json_value *json_parse(const char *text, size_t len, char *err, size_t err_len);

void json_free(json_value *v);

/* The value of `key` in an object, or NULL. */
json_value *json_get(const json_value *object, const char *key);

#endif
