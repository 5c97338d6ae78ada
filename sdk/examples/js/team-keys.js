// team-keys: a team API-key allow-list, written in JavaScript.
//
// The same policy exists in Python (../python) and C (../c); see
// ../README.md for what it does and the config it takes.
//
// Built with componentize-js (see build.mjs). WIT names map to JavaScript as
// jco does it: interfaces are imported by their full name, functions and
// record fields are camelCase, variants are `{ tag, val }`, flags are objects
// of booleans, and an export returning `result<_, string>` throws its error.

import { log, getAttr, setAttr, incrCounter } from 'sluice:policy/host@0.1.0';

const KEYS = ['teams', 'header', 'windowSeconds'];
const TEAM_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const COUNT_HEADER = 'x-sluice-team-requests';

/** The config, or throws a message naming the key. */
function parse(text) {
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw `config is not JSON: ${e.message}`;
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw 'config: expected a map with `teams`';
  }
  for (const k of Object.keys(doc)) {
    if (!KEYS.includes(k)) throw `unknown key \`${k}\` (expected one of: ${KEYS.join(', ')})`;
  }
  const teams = doc.teams;
  if (teams === null || typeof teams !== 'object' || Array.isArray(teams) || Object.keys(teams).length === 0) {
    throw 'teams: required, a map of team name to a list of API keys';
  }
  const byKey = new Map();
  for (const [team, keys] of Object.entries(teams)) {
    if (!TEAM_NAME.test(team)) {
      throw `teams.${team}: a team name is 1-64 letters, digits, \`_\`, \`.\` or \`-\``;
    }
    if (!Array.isArray(keys) || keys.length === 0) {
      throw `teams.${team}: expected a non-empty list of API keys`;
    }
    keys.forEach((k, i) => {
      if (typeof k !== 'string' || k.trim() === '') {
        throw `teams.${team}[${i}]: expected a non-empty string`;
      }
      if (byKey.has(k)) {
        throw `teams.${team}[${i}]: this key is already given to team \`${byKey.get(k)}\``;
      }
      byKey.set(k, team);
    });
  }
  const header = doc.header === undefined ? 'x-sluice-team' : doc.header;
  if (typeof header !== 'string' || !HEADER_NAME.test(header)) {
    throw 'header: expected a lowercase HTTP header name';
  }
  const window = doc.windowSeconds === undefined ? 60 : doc.windowSeconds;
  if (!Number.isInteger(window) || window < 1 || window > 86400) {
    throw 'windowSeconds: expected a whole number from 1 to 86400';
  }
  return { byKey, header, windowMs: BigInt(window * 1000) };
}

/** The key from `x-api-key`, else from `authorization: Bearer ...`. */
function apiKey(headers) {
  let bearer;
  for (const [name, value] of headers) {
    if (name === 'x-api-key') return value.trim();
    if (name === 'authorization' && value.slice(0, 7).toLowerCase() === 'bearer ') {
      bearer = value.slice(7).trim();
    }
  }
  return bearer;
}

function unauthorized(message) {
  return {
    tag: 'respond',
    val: {
      status: 401,
      headers: [['www-authenticate', 'Bearer']],
      message,
      errorType: '', // the host picks the provider's own type
      body: undefined,
    },
  };
}

const noOps = () => ({ set: [], add: [], remove: [] });

let config;

export const policy = {
  validate(text) {
    parse(text);
  },

  init(text) {
    config = parse(text);
    return { hooks: { requestHeaders: true, responseHeaders: true }, fetchHosts: [] };
  },

  onRequestHeaders(ctx, headers) {
    const key = apiKey(headers);
    if (!key) return unauthorized('missing API key: send x-api-key or Authorization: Bearer');
    const team = config.byKey.get(key);
    if (team === undefined) {
      log('info', 'unknown API key refused');
      return unauthorized('unknown API key');
    }
    const count = incrCounter(`team-keys/${team}`, 1n, config.windowMs);
    setAttr('team', team);
    setAttr('team.requests', String(count.total));
    log('debug', `team ${team}: request ${count.total} in this window`);
    // `set` replaces any value the client sent: the team cannot be spoofed.
    return { tag: 'continue', val: { set: [[config.header, team]], add: [], remove: [] } };
  },

  onRequestBody() {
    return { tag: 'continue' };
  },

  onResponseHeaders(ctx, status, headers) {
    const team = getAttr('team');
    const ops = noOps();
    if (team != null) {
      ops.set = [
        [config.header, team],
        [COUNT_HEADER, getAttr('team.requests') ?? '0'],
      ];
    }
    return { tag: 'continue', val: ops };
  },

  onResponseBody() {
    return { tag: 'continue' };
  },

  onResponseEvent(ctx, event) {
    return [event];
  },

  onResponseEnd() {
    return [];
  },

  onComplete() {},
};
