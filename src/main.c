/*
 * strata: the command line. `strata serve [config-file] [--demo]`, `strata version`.
 * Configuration errors print one line naming the setting and exit with status 2 before
 * anything starts. Blocking calls are fine here: no loop runs yet.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "app/app.h"
#include "core/config.h"
#include "core/core.h"

#define STRATA_VERSION "0.1.0"

extern char **environ;

static void usage(FILE *f)
{
    fprintf(f, "usage: strata serve [config-file] [--demo]\n"
               "       strata version\n"
               "\n"
               "Settings come from PostgREST's environment variables (PGRST_DB_URI, PGRST_DB_SCHEMAS,\n"
               "PGRST_DB_ANON_ROLE, PGRST_SERVER_PORT, ...), Strata's own (STRATA_DATA_DIR,\n"
               "STRATA_WORKERS, ...) and an optional PostgREST-style config file. Without\n"
               "PGRST_DB_URI, Strata runs its own PostgreSQL under STRATA_DATA_DIR (./.strata).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("strata %s\n", STRATA_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "serve") != 0) {
        fprintf(stderr, "strata: unknown command \"%s\"\n", argv[1]);
        usage(stderr);
        return 2;
    }
    core_config_t cfg;
    core_config_defaults(&cfg);
    char err[1024] = "";
    const char *file = NULL;
    bool demo = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--demo")) demo = true;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "strata: unknown option \"%s\"\n", argv[i]);
            return 2;
        } else if (!file) file = argv[i];
        else {
            fprintf(stderr, "strata: only one config file may be given\n");
            return 2;
        }
    }
    int rc = core_config_load(&cfg, file, environ, err, sizeof(err));
    if (rc != CORE_OK) {
        fprintf(stderr, "strata: configuration error: %s\n", err);
        return 2;
    }
    cfg.config_path = file;
    if (demo) cfg.demo = true;
    core_log_set_level(cfg.log_level);
    /* From here on log lines go through the writer thread, so a slow stderr never stalls a
     * loop. Every path below returns through core_log_writer_stop, which writes what is
     * queued (the shutdown lines included). If it cannot start, logging stays direct. */
    if (core_log_writer_start() != CORE_OK) LOG_WARN("log writer thread not started; logging directly");
    int status = app_serve(&cfg);
    core_config_free(&cfg);
    core_log_writer_stop();
    return status;
}
