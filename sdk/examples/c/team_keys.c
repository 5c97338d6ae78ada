/* team-keys: a team API-key allow-list, written in C.
 *
 * The same policy exists in Python (../python) and JavaScript (../js); see
 * ../README.md for what it does and the config it takes.
 *
 * The bindings (gen/policy_plugin.{h,c}) are generated from wit/ by
 * `wit-bindgen c` at every build (see build.sh). Their conventions: the
 * callee owns the arguments it receives (free them), and everything it
 * returns must be malloc'd, since the generated post-return code frees it. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "policy_plugin.h"

#define COUNT_HEADER "x-sluice-team-requests"

typedef struct {
  json_value *root;       /* owns every string below */
  const char **keys;      /* API keys ... */
  const char **key_team;  /* ... and the team of each */
  size_t n_keys;
  const char *header;
  uint64_t window_ms;
} config;

static config CONFIG;

static void free_config(config *c) {
  json_free(c->root);
  free(c->keys);
  free(c->key_team);
  memset(c, 0, sizeof *c);
}

static bool team_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > 64) return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-') return false;
  return true;
}

static bool header_name_ok(const char *s) {
  if (!*s) return false;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (!(islower(c) || isdigit(c) || strchr("!#$%&'*+.^_`|~-", c))) return false;
  }
  return true;
}

static bool blank(const char *s) {
  for (; *s; s++)
    if (!isspace((unsigned char)*s)) return false;
  return true;
}

/* Parses and checks `text` into `out`; on failure writes a message naming
 * the key into `err` and returns false. */
static bool parse(const char *text, size_t len, config *out, char *err, size_t err_len) {
  static const char *KEYS[] = {"teams", "header", "windowSeconds"};
  char jerr[128];
  memset(out, 0, sizeof *out);
  json_value *root = json_parse(text, len, jerr, sizeof jerr);
  if (!root) {
    snprintf(err, err_len, "config is not JSON: %s", jerr);
    return false;
  }
  out->root = root;
  if (root->type != JSON_OBJECT) {
    snprintf(err, err_len, "config: expected a map with `teams`");
    goto fail;
  }
  for (size_t i = 0; i < root->len; i++) {
    bool known = false;
    for (size_t k = 0; k < sizeof KEYS / sizeof *KEYS; k++) known |= strcmp(root->keys[i], KEYS[k]) == 0;
    if (!known) {
      snprintf(err, err_len, "unknown key `%s` (expected one of: teams, header, windowSeconds)", root->keys[i]);
      goto fail;
    }
  }
  json_value *teams = json_get(root, "teams");
  if (!teams || teams->type != JSON_OBJECT || teams->len == 0) {
    snprintf(err, err_len, "teams: required, a map of team name to a list of API keys");
    goto fail;
  }
  size_t total = 0;
  for (size_t t = 0; t < teams->len; t++) total += teams->items[t]->len;
  out->keys = calloc(total + 1, sizeof *out->keys);
  out->key_team = calloc(total + 1, sizeof *out->key_team);
  if (!out->keys || !out->key_team) {
    snprintf(err, err_len, "out of memory");
    goto fail;
  }
  for (size_t t = 0; t < teams->len; t++) {
    const char *team = teams->keys[t];
    json_value *list = teams->items[t];
    if (!team_name_ok(team)) {
      snprintf(err, err_len, "teams.%s: a team name is 1-64 letters, digits, `_`, `.` or `-`", team);
      goto fail;
    }
    if (list->type != JSON_ARRAY || list->len == 0) {
      snprintf(err, err_len, "teams.%s: expected a non-empty list of API keys", team);
      goto fail;
    }
    for (size_t i = 0; i < list->len; i++) {
      json_value *k = list->items[i];
      if (k->type != JSON_STRING || blank(k->string)) {
        snprintf(err, err_len, "teams.%s[%zu]: expected a non-empty string", team, i);
        goto fail;
      }
      for (size_t j = 0; j < out->n_keys; j++) {
        if (strcmp(out->keys[j], k->string) == 0) {
          snprintf(err, err_len, "teams.%s[%zu]: this key is already given to team `%s`", team, i, out->key_team[j]);
          goto fail;
        }
      }
      out->keys[out->n_keys] = k->string;
      out->key_team[out->n_keys] = team;
      out->n_keys++;
    }
  }
  json_value *header = json_get(root, "header");
  out->header = "x-sluice-team";
  if (header) {
    if (header->type != JSON_STRING || !header_name_ok(header->string)) {
      snprintf(err, err_len, "header: expected a lowercase HTTP header name");
      goto fail;
    }
    out->header = header->string;
  }
  json_value *window = json_get(root, "windowSeconds");
  double seconds = 60;
  if (window) {
    seconds = window->number;
    if (window->type != JSON_NUMBER || seconds != (double)(long long)seconds || seconds < 1 || seconds > 86400) {
      snprintf(err, err_len, "windowSeconds: expected a whole number from 1 to 86400");
      goto fail;
    }
  }
  out->window_ms = (uint64_t)seconds * 1000;
  return true;
fail:
  free_config(out);
  return false;
}

static void dup_n(policy_plugin_string_t *s, const char *c, size_t n) { policy_plugin_string_dup_n(s, c, n); }
static void dup(policy_plugin_string_t *s, const char *c) { dup_n(s, c, strlen(c)); }

static void log_line(sluice_policy_host_level_t level, const char *msg) {
  policy_plugin_string_t s;
  policy_plugin_string_set(&s, msg); /* borrowed: the import does not take ownership */
  sluice_policy_host_log(level, &s);
}

static bool eq(const policy_plugin_string_t *s, const char *c) {
  size_t n = strlen(c);
  return s->len == n && memcmp(s->ptr, c, n) == 0;
}

static void trim(const uint8_t **p, size_t *n) {
  while (*n && (**p == ' ' || **p == '\t')) (*p)++, (*n)--;
  while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t')) (*n)--;
}

/* The key from `x-api-key`, else from `authorization: Bearer ...`. */
static bool api_key(const sluice_policy_types_headers_t *h, const uint8_t **key, size_t *len) {
  bool found = false;
  for (size_t i = 0; i < h->len; i++) {
    const policy_plugin_string_t *name = &h->ptr[i].f0, *value = &h->ptr[i].f1;
    if (eq(name, "x-api-key")) {
      *key = value->ptr, *len = value->len;
      trim(key, len);
      return true;
    }
    if (!found && eq(name, "authorization") && value->len >= 7 &&
        strncasecmp((const char *)value->ptr, "bearer ", 7) == 0) {
      *key = value->ptr + 7, *len = value->len - 7;
      trim(key, len);
      found = true;
    }
  }
  return found;
}

static const char *team_of(const uint8_t *key, size_t len) {
  for (size_t i = 0; i < CONFIG.n_keys; i++)
    if (strlen(CONFIG.keys[i]) == len && memcmp(CONFIG.keys[i], key, len) == 0) return CONFIG.key_team[i];
  return NULL;
}

static policy_plugin_tuple2_string_string_t *pairs(size_t n) {
  return calloc(n, sizeof(policy_plugin_tuple2_string_string_t));
}

static void unauthorized(sluice_policy_types_headers_action_t *ret, const char *message) {
  ret->tag = SLUICE_POLICY_TYPES_HEADERS_ACTION_RESPOND;
  sluice_policy_types_immediate_response_t *r = &ret->val.respond;
  memset(r, 0, sizeof *r);
  r->status = 401;
  r->headers.ptr = pairs(1);
  r->headers.len = 1;
  dup(&r->headers.ptr[0].f0, "www-authenticate");
  dup(&r->headers.ptr[0].f1, "Bearer");
  dup(&r->message, message);
  /* error_type stays empty: the host picks the provider's own type. */
}

bool exports_sluice_policy_policy_validate(policy_plugin_string_t *text, policy_plugin_string_t *err) {
  char msg[512];
  config c;
  bool ok = parse((const char *)text->ptr, text->len, &c, msg, sizeof msg);
  policy_plugin_string_free(text);
  if (!ok) {
    dup(err, msg);
    return false;
  }
  free_config(&c);
  return true;
}

bool exports_sluice_policy_policy_init(policy_plugin_string_t *text,
                                       exports_sluice_policy_policy_init_result_t *ret,
                                       policy_plugin_string_t *err) {
  char msg[512];
  config c;
  bool ok = parse((const char *)text->ptr, text->len, &c, msg, sizeof msg);
  policy_plugin_string_free(text);
  if (!ok) {
    dup(err, msg);
    return false;
  }
  free_config(&CONFIG);
  CONFIG = c;
  ret->hooks = SLUICE_POLICY_TYPES_HOOKS_REQUEST_HEADERS | SLUICE_POLICY_TYPES_HOOKS_RESPONSE_HEADERS;
  ret->fetch_hosts.ptr = NULL;
  ret->fetch_hosts.len = 0;
  return true;
}

void exports_sluice_policy_policy_on_request_headers(exports_sluice_policy_policy_request_context_t *ctx,
                                                     exports_sluice_policy_policy_headers_t *headers,
                                                     exports_sluice_policy_policy_headers_action_t *ret) {
  const uint8_t *key;
  size_t len;
  if (!api_key(headers, &key, &len) || len == 0) {
    unauthorized(ret, "missing API key: send x-api-key or Authorization: Bearer");
  } else {
    const char *team = team_of(key, len);
    if (!team) {
      log_line(SLUICE_POLICY_HOST_LEVEL_INFO, "unknown API key refused");
      unauthorized(ret, "unknown API key");
    } else {
      char counter[128], count[32], line[160];
      snprintf(counter, sizeof counter, "team-keys/%s", team);
      policy_plugin_string_t k, v;
      policy_plugin_string_set(&k, counter);
      sluice_policy_host_window_count_t c;
      sluice_policy_host_incr_counter(&k, 1, CONFIG.window_ms, &c);
      snprintf(count, sizeof count, "%lld", (long long)c.total);
      policy_plugin_string_set(&k, "team");
      policy_plugin_string_set(&v, team);
      sluice_policy_host_set_attr(&k, &v);
      policy_plugin_string_set(&k, "team.requests");
      policy_plugin_string_set(&v, count);
      sluice_policy_host_set_attr(&k, &v);
      snprintf(line, sizeof line, "team %s: request %s in this window", team, count);
      log_line(SLUICE_POLICY_HOST_LEVEL_DEBUG, line);
      /* `set` replaces any value the client sent: the team cannot be spoofed. */
      ret->tag = SLUICE_POLICY_TYPES_HEADERS_ACTION_CONTINUE;
      sluice_policy_types_header_ops_t *ops = &ret->val.continue_;
      memset(ops, 0, sizeof *ops);
      ops->set.ptr = pairs(1);
      ops->set.len = 1;
      dup(&ops->set.ptr[0].f0, CONFIG.header);
      dup(&ops->set.ptr[0].f1, team);
    }
  }
  exports_sluice_policy_policy_request_context_free(ctx);
  exports_sluice_policy_policy_headers_free(headers);
}

void exports_sluice_policy_policy_on_request_body(exports_sluice_policy_policy_request_context_t *ctx,
                                                  exports_sluice_policy_policy_headers_t *headers,
                                                  policy_plugin_list_u8_t *body,
                                                  exports_sluice_policy_policy_body_action_t *ret) {
  ret->tag = SLUICE_POLICY_TYPES_BODY_ACTION_CONTINUE;
  exports_sluice_policy_policy_request_context_free(ctx);
  exports_sluice_policy_policy_headers_free(headers);
  policy_plugin_list_u8_free(body);
}

void exports_sluice_policy_policy_on_response_headers(exports_sluice_policy_policy_request_context_t *ctx,
                                                      uint16_t status,
                                                      exports_sluice_policy_policy_headers_t *headers,
                                                      exports_sluice_policy_policy_response_headers_action_t *ret) {
  (void)status;
  ret->tag = SLUICE_POLICY_TYPES_RESPONSE_HEADERS_ACTION_CONTINUE;
  sluice_policy_types_header_ops_t *ops = &ret->val.continue_;
  memset(ops, 0, sizeof *ops);
  policy_plugin_string_t k, team, count;
  policy_plugin_string_set(&k, "team");
  if (sluice_policy_host_get_attr(&k, &team)) {
    policy_plugin_string_set(&k, "team.requests");
    if (!sluice_policy_host_get_attr(&k, &count)) dup(&count, "0");
    ops->set.ptr = pairs(2);
    ops->set.len = 2;
    dup(&ops->set.ptr[0].f0, CONFIG.header);
    ops->set.ptr[0].f1 = team; /* ownership moves into the result */
    dup(&ops->set.ptr[1].f0, COUNT_HEADER);
    ops->set.ptr[1].f1 = count;
  }
  exports_sluice_policy_policy_request_context_free(ctx);
  exports_sluice_policy_policy_headers_free(headers);
}

void exports_sluice_policy_policy_on_response_body(exports_sluice_policy_policy_request_context_t *ctx,
                                                   uint16_t status, policy_plugin_list_u8_t *body,
                                                   exports_sluice_policy_policy_body_action_t *ret) {
  (void)status;
  ret->tag = SLUICE_POLICY_TYPES_BODY_ACTION_CONTINUE;
  exports_sluice_policy_policy_request_context_free(ctx);
  policy_plugin_list_u8_free(body);
}

void exports_sluice_policy_policy_on_response_event(exports_sluice_policy_policy_request_context_t *ctx,
                                                    exports_sluice_policy_policy_sse_event_t *event,
                                                    exports_sluice_policy_policy_list_sse_event_t *ret) {
  /* Pass the event on: the received one (owned by us) becomes the result. */
  ret->ptr = malloc(sizeof *ret->ptr);
  ret->len = 1;
  ret->ptr[0] = *event;
  exports_sluice_policy_policy_request_context_free(ctx);
}

void exports_sluice_policy_policy_on_response_end(exports_sluice_policy_policy_request_context_t *ctx,
                                                  exports_sluice_policy_policy_list_sse_event_t *ret) {
  ret->ptr = NULL;
  ret->len = 0;
  exports_sluice_policy_policy_request_context_free(ctx);
}

void exports_sluice_policy_policy_on_complete(exports_sluice_policy_policy_request_context_t *ctx,
                                              exports_sluice_policy_policy_completion_t *summary) {
  exports_sluice_policy_policy_request_context_free(ctx);
  exports_sluice_policy_policy_completion_free(summary);
}
