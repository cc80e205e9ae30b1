/*
 * Request arenas (STYLE rule 9). Blocks are chained; a request frees everything at once.
 * Large allocations get a block of their own so a big body does not waste a small block.
 */
#include <string.h>

#include "core.h"

#define ARENA_ALIGN 16u
#define ARENA_MIN_BLOCK 1024u

typedef struct arena_block {
    struct arena_block *next;
    size_t size;
    size_t used;
    _Alignas(16) unsigned char data[];
} arena_block_t;

typedef struct arena_cleanup {
    struct arena_cleanup *next;
    void (*fn)(void *);
    void *arg;
} arena_cleanup_t;

struct core_arena {
    arena_block_t *head;
    arena_cleanup_t *cleanups;
    size_t block_size;
    size_t total;
};

static arena_block_t *block_new(size_t size)
{
    arena_block_t *b = core_malloc(sizeof(*b) + size);
    if (!b) return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

core_arena_t *core_arena_create(size_t first_block)
{
    core_arena_t *a = core_malloc(sizeof(*a));
    if (!a) return NULL;
    a->block_size = first_block < ARENA_MIN_BLOCK ? ARENA_MIN_BLOCK : first_block;
    a->head = block_new(a->block_size);
    if (!a->head) {
        core_free(a);
        return NULL;
    }
    a->cleanups = NULL;
    a->total = 0;
    return a;
}

void core_arena_destroy(core_arena_t *a)
{
    if (!a) return;
    for (arena_cleanup_t *c = a->cleanups; c; c = c->next) c->fn(c->arg);
    arena_block_t *b = a->head;
    while (b) {
        arena_block_t *n = b->next;
        core_free(b);
        b = n;
    }
    core_free(a);
}

void *core_arena_alloc(core_arena_t *a, size_t n)
{
    if (n > SIZE_MAX / 2) return NULL;
    size_t need = (n + (ARENA_ALIGN - 1)) & ~(size_t)(ARENA_ALIGN - 1);
    if (need == 0) need = ARENA_ALIGN;
    arena_block_t *b = a->head;
    if (b->size - b->used < need) {
        if (need > a->block_size / 4) {
            /* Big: its own block, linked after the head so the head keeps serving. */
            arena_block_t *big = block_new(need);
            if (!big) return NULL;
            big->used = need;
            big->next = b->next;
            b->next = big;
            a->total += need;
            return big->data;
        }
        if (a->block_size < (1u << 20)) a->block_size *= 2;
        arena_block_t *nb = block_new(a->block_size);
        if (!nb) return NULL;
        nb->next = b;
        a->head = nb;
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += need;
    a->total += need;
    return p;
}

void *core_arena_zalloc(core_arena_t *a, size_t n)
{
    void *p = core_arena_alloc(a, n);
    if (p) memset(p, 0, n);
    return p;
}

char *core_arena_strdup(core_arena_t *a, str_t s)
{
    char *d = core_arena_alloc(a, s.len + 1);
    if (!d) return NULL;
    if (s.len) memcpy(d, s.ptr, s.len);
    d[s.len] = '\0';
    return d;
}

int core_arena_defer(core_arena_t *a, void (*fn)(void *), void *arg)
{
    arena_cleanup_t *c = core_arena_alloc(a, sizeof(*c));
    if (!c) return CORE_ENOMEM;
    c->fn = fn;
    c->arg = arg;
    c->next = a->cleanups;
    a->cleanups = c;
    return CORE_OK;
}

size_t core_arena_used(const core_arena_t *a) { return a->total; }
