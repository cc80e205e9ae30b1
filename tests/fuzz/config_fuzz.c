/*
 * libFuzzer target for the config parser: the bytes are a config file's text. The same
 * bytes, split at newlines, are also applied as an environment, and whatever parsed is
 * validated, so every entry point that reads user text is exercised. Must never crash or
 * leak (ASan/UBSan build).
 */
#include <stdint.h>
#include <string.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_ENV 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    core_config_t cfg;
    core_config_defaults(&cfg);
    if (core_config_parse_text(&cfg, (str_t){(const char *)data, size}, err, sizeof(err)) ==
        CORE_OK)
        (void)core_config_validate(&cfg, err, sizeof(err));
    core_config_free(&cfg);

    /* Environment entries are C strings: copy, cut at newlines, stop at a NUL. */
    char *copy = core_malloc(size + 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    copy[size] = '\0';
    char *envp[FUZZ_MAX_ENV + 1];
    size_t n = 0;
    char *p = copy;
    while (n < FUZZ_MAX_ENV && *p) {
        envp[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        *nl = '\0';
        p = nl + 1;
    }
    envp[n] = NULL;
    core_config_defaults(&cfg);
    if (core_config_apply_env(&cfg, envp, err, sizeof(err)) == CORE_OK)
        (void)core_config_validate(&cfg, err, sizeof(err));
    core_config_free(&cfg);
    core_free(copy);
    return 0;
}
