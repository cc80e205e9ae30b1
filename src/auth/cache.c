/*
 * The per-worker JWT cache: token bytes → what verification concluded (role, claims text,
 * exp). One per worker thread, so no locks. Only tokens that passed every check are
 * stored; the time-dependent check (exp, plus the optional lifetime cap) is redone on each
 * hit, so a cached answer is the answer a fresh verification would give: nbf and iat only
 * become "more valid" as time passes, and the verifier (keys, jwt-aud, role path) is fixed
 * for the cache's owner id.
 *
 * Layout: a fixed array of max entries (slots handed out by a high-water mark, reused
 * through a free stack) and a power-of-two bucket array of chains. Indexes are stored +1
 * so that zeroed memory means "empty", and a large calloc stays untouched until used.
 * Eviction is CLOCK (second chance): a hit sets `visited`; the hand clears it or evicts.
 * Entries past their time are evicted first when the hand meets them.
 */
#include <string.h>

#include <openssl/rand.h>

#include "auth/auth_int.h"

#define NONE 0u /* "no entry" in buckets / next; real indexes are stored as i + 1 */

typedef struct {
    uint64_t hash;
    char *mem; /* one block: token, then role (NUL) when not anonymous, then claims (NUL) */
    size_t token_len;
    const char *role;
    const char *claims;
    size_t claims_len;
    int64_t exp;
    int64_t until; /* served while now < until */
    uint32_t next;
    bool used;
    bool visited;
} entry_t;

struct auth_cache {
    uint64_t owner; /* id of the verifier whose results these are; 0 = none yet */
    uint64_t seed;
    size_t max;
    unsigned lifetime;
    entry_t *e;
    uint32_t *buckets;
    size_t mask;
    size_t high;      /* slots [0, high) have been handed out at least once */
    uint32_t free_top; /* stack of released slots, linked through next */
    size_t hand;
    auth_cache_stats_t st;
};

/* Word-at-a-time multiply/xorshift mix, seeded per cache. Chains hold verified tokens only,
 * so the seed is a guard against guessable layouts more than a defence that must hold. */
static uint64_t hash_token(uint64_t seed, str_t s)
{
    uint64_t h = seed ^ ((uint64_t)s.len * 0x9E3779B97F4A7C15ull);
    size_t i = 0;
    for (; i + 8 <= s.len; i += 8) {
        uint64_t w;
        memcpy(&w, s.ptr + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    if (s.len > i) memcpy(&w, s.ptr + i, s.len - i);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    return h;
}

auth_cache_t *auth_cache_create(size_t max_entries, unsigned max_lifetime_s)
{
    if (max_entries > UINT32_MAX / 4) max_entries = UINT32_MAX / 4;
    auth_cache_t *c = core_calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->max = max_entries;
    c->lifetime = max_lifetime_s;
    if (RAND_bytes((unsigned char *)&c->seed, sizeof(c->seed)) != 1)
        c->seed = (uint64_t)(uintptr_t)c ^ core_now_ns();
    if (max_entries == 0) return c;
    size_t nb = 16;
    while (nb < 2 * max_entries) nb *= 2;
    c->e = core_calloc(max_entries, sizeof(entry_t));
    c->buckets = core_calloc(nb, sizeof(uint32_t));
    if (!c->e || !c->buckets) {
        auth_cache_free(c);
        return NULL;
    }
    c->mask = nb - 1;
    return c;
}

auth_cache_t *auth_cache_create_for(const auth_jwt_t *v)
{
    return auth_cache_create(v ? v->cache_max_entries : 0, v ? v->cache_max_lifetime_s : 0);
}

void auth_cache_free(auth_cache_t *c)
{
    if (!c) return;
    if (c->e)
        for (size_t i = 0; i < c->high; i++) core_free(c->e[i].mem);
    core_free(c->e);
    core_free(c->buckets);
    core_free(c);
}

void auth_cache_stats(const auth_cache_t *c, auth_cache_stats_t *out)
{
    if (!c) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = c->st;
}

/* Unlinks slot i from its chain, frees its memory and pushes it on the free stack. */
static void release(auth_cache_t *c, size_t i)
{
    entry_t *e = &c->e[i];
    uint32_t *link = &c->buckets[e->hash & c->mask];
    while (*link != NONE && *link != i + 1) link = &c->e[*link - 1].next;
    if (*link == i + 1) *link = e->next;
    core_free(e->mem);
    memset(e, 0, sizeof(*e));
    e->next = c->free_top;
    c->free_top = (uint32_t)(i + 1);
    c->st.entries--;
}

/* A cache filled for another verifier (the config was reloaded) starts over. */
static void adopt(auth_cache_t *c, const auth_jwt_t *v)
{
    if (c->owner == v->id) return;
    for (size_t i = 0; i < c->high; i++) core_free(c->e[i].mem);
    if (c->high) memset(c->e, 0, c->high * sizeof(entry_t));
    memset(c->buckets, 0, (c->mask + 1) * sizeof(uint32_t));
    c->high = 0;
    c->free_top = NONE;
    c->hand = 0;
    c->st.entries = 0;
    c->owner = v->id;
}

bool auth_cache_lookup(auth_cache_t *c, const auth_jwt_t *v, str_t token, int64_t now,
                       auth_cache_hit_t *hit)
{
    if (!c || c->max == 0) return false;
    adopt(c, v);
    uint64_t h = hash_token(c->seed, token);
    for (uint32_t i = c->buckets[h & c->mask]; i != NONE; i = c->e[i - 1].next) {
        entry_t *e = &c->e[i - 1];
        if (e->hash != h || e->token_len != token.len || memcmp(e->mem, token.ptr, token.len) != 0)
            continue;
        if (now >= e->until) {
            release(c, i - 1);
            c->st.expired++;
            break;
        }
        e->visited = true;
        c->st.hits++;
        hit->role = e->role;
        hit->claims = e->claims;
        hit->claims_len = e->claims_len;
        hit->exp = e->exp;
        return true;
    }
    c->st.misses++;
    return false;
}

/* A free slot: from the stack, then fresh ones, then the CLOCK hand's victim. */
static size_t take_slot(auth_cache_t *c, int64_t now)
{
    if (c->free_top != NONE) {
        size_t i = c->free_top - 1;
        c->free_top = c->e[i].next;
        c->e[i].next = NONE;
        return i;
    }
    if (c->high < c->max) return c->high++;
    /* Every slot is in use here; at most two sweeps find one without a second chance. */
    for (;;) {
        size_t i = c->hand;
        entry_t *e = &c->e[i];
        c->hand = (c->hand + 1) % c->max;
        if (e->visited && now < e->until) {
            e->visited = false;
            continue;
        }
        if (now >= e->until) c->st.expired++;
        else c->st.evictions++;
        release(c, i);
        c->free_top = c->e[i].next;
        c->e[i].next = NONE;
        return i;
    }
}

void auth_cache_insert(auth_cache_t *c, const auth_jwt_t *v, str_t token,
                       const auth_cache_hit_t *val, int64_t now)
{
    if (!c || c->max == 0) return;
    adopt(c, v);
    int64_t until = INT64_MAX;
    if (val->exp) until = val->exp + AUTH_JWT_LEEWAY_S + 1; /* exp is clamped: no overflow */
    if (c->lifetime && now + (int64_t)c->lifetime < until) until = now + (int64_t)c->lifetime;
    if (now >= until) return;

    size_t rlen = val->role ? strlen(val->role) + 1 : 0;
    char *mem = core_malloc(token.len + rlen + val->claims_len + 1);
    if (!mem) return;
    size_t i = take_slot(c, now);
    entry_t *e = &c->e[i];
    memcpy(mem, token.ptr, token.len);
    e->mem = mem;
    e->token_len = token.len;
    e->role = NULL;
    if (val->role) {
        memcpy(mem + token.len, val->role, rlen);
        e->role = mem + token.len;
    }
    char *cl = mem + token.len + rlen;
    if (val->claims_len) memcpy(cl, val->claims, val->claims_len);
    cl[val->claims_len] = '\0';
    e->claims = cl;
    e->claims_len = val->claims_len;
    e->exp = val->exp;
    e->until = until;
    e->hash = hash_token(c->seed, token);
    e->used = true;
    e->visited = false;
    uint32_t *b = &c->buckets[e->hash & c->mask];
    e->next = *b;
    *b = (uint32_t)(i + 1);
    c->st.inserts++;
    c->st.entries++;
}
