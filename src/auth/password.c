/*
 * argon2id (libsodium crypto_pwhash_str) on the libuv thread pool. One hash at interactive
 * limits takes ~64 MiB and ~0.25 s, so each worker lets at most max_running of its jobs
 * run at once and queues the rest in order; a job's completion (on the loop) starts the
 * next one. Nothing here touches the request's arena from the pool thread: the job holds
 * everything the work function reads and writes.
 */
#include <string.h>

#include "auth/service_int.h"

struct auth_hasher {
    uv_loop_t *loop;
    unsigned running, max_running;
    size_t queued;
    auth_hash_job_t *head, *tail;
    unsigned long long ops;
    size_t mem;
};

bool auth_hash_limits(const char *name, unsigned long long *ops, size_t *mem)
{
    if (!strcmp(name, "interactive")) {
        *ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
        *mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
    } else if (!strcmp(name, "moderate")) {
        *ops = crypto_pwhash_OPSLIMIT_MODERATE;
        *mem = crypto_pwhash_MEMLIMIT_MODERATE;
    } else if (!strcmp(name, "min")) {
        *ops = crypto_pwhash_OPSLIMIT_MIN;
        *mem = crypto_pwhash_MEMLIMIT_MIN;
    } else {
        return false;
    }
    return true;
}

int auth_hash_now(const char *password, size_t len, unsigned long long ops, size_t mem,
                  char out[crypto_pwhash_STRBYTES])
{
    return crypto_pwhash_str(out, password, len, ops, mem) == 0 ? CORE_OK : CORE_ENOMEM;
}

auth_hasher_t *auth_hasher_create(uv_loop_t *loop, unsigned max_running, unsigned long long ops, size_t mem)
{
    auth_hasher_t *h = core_calloc(1, sizeof(*h));
    if (!h) return NULL;
    h->loop = loop;
    h->max_running = max_running ? max_running : 1;
    h->ops = ops;
    h->mem = mem;
    return h;
}

void auth_hasher_free(auth_hasher_t *h) { core_free(h); }

static void hash_work(uv_work_t *w)
{
    auth_hash_job_t *j = w->data;
    if (j->kind == AUTH_HASH_MAKE) {
        unsigned long long ops = j->ops ? j->ops : j->hasher->ops;
        size_t mem = j->ops ? j->mem : j->hasher->mem;
        j->status = auth_hash_now(j->password, j->password_len, ops, mem, j->hash);
    } else {
        /* Constant time in the password; a malformed stored hash simply fails. */
        j->verify_ok = crypto_pwhash_str_verify(j->stored, j->password, j->password_len) == 0;
        j->status = CORE_OK;
    }
}

static void hash_start_next(auth_hasher_t *h);

static void hash_after(uv_work_t *w, int status)
{
    auth_hash_job_t *j = w->data;
    auth_hasher_t *h = j->hasher;
    h->running--;
    if (status != 0) j->status = CORE_EIO;
    j->done(j, j->status);
    hash_start_next(h);
}

static void hash_start_next(auth_hasher_t *h)
{
    while (h->running < h->max_running && h->head) {
        auth_hash_job_t *j = h->head;
        h->head = j->next;
        if (!h->head) h->tail = NULL;
        h->queued--;
        j->work.data = j;
        if (uv_queue_work(h->loop, &j->work, hash_work, hash_after) != 0) {
            j->done(j, CORE_EIO);
            continue;
        }
        h->running++;
    }
}

int auth_hash_submit(auth_hasher_t *h, auth_hash_job_t *job)
{
    if (h->queued >= AUTH_HASH_MAX_QUEUED) return CORE_ELIMIT;
    job->hasher = h;
    job->next = NULL;
    job->status = CORE_OK;
    job->verify_ok = false;
    if (h->tail) h->tail->next = job;
    else h->head = job;
    h->tail = job;
    h->queued++;
    /* done never runs from here: uv_queue_work's callbacks always come later (it only
     * fails for a NULL work callback). */
    hash_start_next(h);
    return CORE_OK;
}
