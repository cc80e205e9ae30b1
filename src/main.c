#include <stdio.h>

#include "core/core.h"

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    LOG_INFO("strata");
    return 0;
}
