/* A plain C99 client: proves the header and the library work from C, and checks the versions agree. */
#include <stdio.h>
#include <string.h>

#include "powerinfer/powerinfer.h"

int main(void) {
    pi_model *model = NULL;
    pi_model_params params;
    pi_status status;
    char expected[32];

    if (pi_abi_version() != PI_ABI_VERSION) {
        fprintf(stderr, "ABI version mismatch: header %d, library %u\n", PI_ABI_VERSION, (unsigned)pi_abi_version());
        return 1;
    }
    sprintf(expected, "%d.%d.%d", PI_VERSION_MAJOR, PI_VERSION_MINOR, PI_VERSION_PATCH);
    if (strcmp(pi_version(), expected) != 0) {
        fprintf(stderr, "version mismatch: header %s, library %s\n", expected, pi_version());
        return 1;
    }
    pi_model_params_init(&params);
    status = pi_model_load("/nonexistent/model.gguf", &params, &model);
    if (status != PI_ERR_IO || model != NULL || strlen(pi_last_error()) == 0) {
        fprintf(stderr, "loading a missing file: status %d (%s), message '%s'\n", (int)status,
                pi_status_string(status), pi_last_error());
        return 1;
    }
    pi_model_free(NULL);
    printf("libpowerinfer %s (ABI %u) OK from C99\n", pi_version(), (unsigned)pi_abi_version());
    return 0;
}
