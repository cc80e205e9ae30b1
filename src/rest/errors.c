/* SQLSTATE → HTTP status, PostgREST's table (CONFORMANCE.md "Errors"). */
#include <string.h>

#include "rest/rest.h"

static bool prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

int rest_status_for_sqlstate(const char *st, const char *message, bool authenticated)
{
    if (!st || strlen(st) != 5) return 500;
    if (!message) message = "";
    if (prefix(st, "08")) return 503;
    if (prefix(st, "09")) return 500;
    if (prefix(st, "0L") || prefix(st, "0P") || prefix(st, "28")) return 403;
    if (!strcmp(st, "21000")) return ends_with(message, "requires a WHERE clause") ? 400 : 500;
    if (!strcmp(st, "22023"))
        return (prefix(message, "role \"") && ends_with(message, "does not exist")) ? 401 : 400;
    if (!strcmp(st, "23503") || !strcmp(st, "23505")) return 409;
    if (!strcmp(st, "25006")) return 405;
    if (prefix(st, "25") || prefix(st, "2D") || prefix(st, "38") || prefix(st, "39") ||
        prefix(st, "3B") || prefix(st, "40"))
        return 500;
    if (!strcmp(st, "53400")) return 500;
    if (prefix(st, "53")) return 503;
    if (prefix(st, "54") || prefix(st, "55")) return 500;
    if (!strcmp(st, "57P01")) return 503;
    if (prefix(st, "57") || prefix(st, "58") || prefix(st, "F0") || prefix(st, "HV") || prefix(st, "XX"))
        return 500;
    if (!strcmp(st, "P0001")) return 400;
    if (prefix(st, "P0")) return 500;
    if (!strcmp(st, "42883") || !strcmp(st, "42P01")) return 404;
    if (!strcmp(st, "42P17")) return 500;
    if (!strcmp(st, "42501")) return authenticated ? 403 : 401;
    /* RAISE SQLSTATE 'PTxyz' sets the status directly. */
    if (st[0] == 'P' && st[1] == 'T' && st[2] >= '1' && st[2] <= '5' && st[3] >= '0' && st[3] <= '9' &&
        st[4] >= '0' && st[4] <= '9')
        return (st[2] - '0') * 100 + (st[3] - '0') * 10 + (st[4] - '0');
    return 400;
}
