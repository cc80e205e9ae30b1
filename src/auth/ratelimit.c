/*
 * In-memory rate limits for the auth service: token buckets in one bounded table shared by
 * every worker under one mutex (the critical section is a hash and a few probes). Keys are
 * kept whole up to RL_KEY_MAX bytes; a longer key is compared by its hash and prefix, so
 * two such keys may share a bucket, which only ever makes a limit stricter.
 */
#include <pthread.h>
#include <string.h>

#include "auth/service_int.h"

#define RL_KEY_MAX 96
#define RL_PROBES 8
#define RL_WINDOW_MS 60000u

typedef struct {
    uint64_t hash;      /* 0 = free */
    uint64_t last_ms;   /* last refill */
    double tokens;
    unsigned char klen;
    char key[RL_KEY_MAX];
} rl_entry_t;

struct auth_ratelimit {
    pthread_mutex_t mu;
    rl_entry_t *slots;
    size_t mask;
    unsigned per_min;
};

/* FNV-1a 64; never 0 (0 marks a free slot). */
static uint64_t rl_hash(str_t k)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < k.len; i++) {
        h ^= (unsigned char)k.ptr[i];
        h *= 1099511628211ull;
    }
    return h ? h : 1;
}

auth_ratelimit_t *auth_ratelimit_create(size_t slots, unsigned per_min)
{
    size_t n = 16;
    while (n < slots && n < ((size_t)1 << 24)) n <<= 1;
    auth_ratelimit_t *rl = core_calloc(1, sizeof(*rl));
    if (!rl) return NULL;
    rl->slots = core_calloc(n, sizeof(rl_entry_t));
    if (!rl->slots || pthread_mutex_init(&rl->mu, NULL) != 0) {
        core_free(rl->slots);
        core_free(rl);
        return NULL;
    }
    rl->mask = n - 1;
    rl->per_min = per_min;
    return rl;
}

void auth_ratelimit_free(auth_ratelimit_t *rl)
{
    if (!rl) return;
    pthread_mutex_destroy(&rl->mu);
    core_free(rl->slots);
    core_free(rl);
}

/* Tokens now, after refilling since last_ms (capped at the bucket size). */
static double rl_refill(const auth_ratelimit_t *rl, const rl_entry_t *e, uint64_t now_ms)
{
    uint64_t dt = now_ms > e->last_ms ? now_ms - e->last_ms : 0;
    double t = e->tokens + (double)dt * (double)rl->per_min / (double)RL_WINDOW_MS;
    return t > (double)rl->per_min ? (double)rl->per_min : t;
}

unsigned auth_ratelimit_take(auth_ratelimit_t *rl, str_t key, uint64_t now_ms)
{
    if (!rl) return 0;
    size_t klen = key.len < RL_KEY_MAX ? key.len : RL_KEY_MAX;
    uint64_t h = rl_hash(key);
    unsigned wait = 0;
    pthread_mutex_lock(&rl->mu);
    if (rl->per_min == 0) { /* off (set_rate may change that at any time) */
        pthread_mutex_unlock(&rl->mu);
        return 0;
    }
    rl_entry_t *hit = NULL, *spare = NULL, *oldest = NULL;
    for (size_t i = 0; i < RL_PROBES; i++) {
        rl_entry_t *e = &rl->slots[(h + i) & rl->mask];
        if (e->hash == h && e->klen == klen && memcmp(e->key, key.ptr, klen) == 0) {
            hit = e;
            break;
        }
        /* Free, or idle for a whole window (a full bucket: the same as a fresh one). */
        bool idle = e->hash == 0 || now_ms >= e->last_ms + RL_WINDOW_MS;
        if (idle && !spare) spare = e;
        if (!oldest || e->last_ms < oldest->last_ms) oldest = e;
    }
    if (!hit) {
        hit = spare ? spare : oldest;
        hit->hash = h;
        hit->klen = (unsigned char)klen;
        memcpy(hit->key, key.ptr, klen);
        hit->tokens = (double)rl->per_min;
        hit->last_ms = now_ms;
    }
    double t = rl_refill(rl, hit, now_ms);
    hit->last_ms = now_ms > hit->last_ms ? now_ms : hit->last_ms;
    if (t >= 1.0) {
        hit->tokens = t - 1.0;
    } else {
        hit->tokens = t;
        double ms = (1.0 - t) * (double)RL_WINDOW_MS / (double)rl->per_min;
        wait = (unsigned)((ms + 999.0) / 1000.0); /* whole seconds, rounded up */
        if (wait == 0) wait = 1;
    }
    pthread_mutex_unlock(&rl->mu);
    return wait;
}

void auth_ratelimit_set_rate(auth_ratelimit_t *rl, unsigned per_min)
{
    pthread_mutex_lock(&rl->mu);
    rl->per_min = per_min; /* buckets keep their tokens; refills cap them at the new size */
    pthread_mutex_unlock(&rl->mu);
}

size_t auth_ratelimit_entries(auth_ratelimit_t *rl)
{
    size_t n = 0;
    pthread_mutex_lock(&rl->mu);
    for (size_t i = 0; i <= rl->mask; i++) n += rl->slots[i].hash != 0;
    pthread_mutex_unlock(&rl->mu);
    return n;
}
