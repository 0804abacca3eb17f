/*
 * Garbage handles never crash: NULL, released, forged and wrong-kind values
 * passed to every function that takes a controller handle get
 * RSMERR_BAD_CTLR_HNDL (DESIGN.md 4; Solaris crashed on most of them).
 */
#include <rsmapi.h>
#include <stdint.h>
#include "common.h"

static int stack_var;

int main(void)
{
    rsmapi_controller_handle_t released, live;
    CHECK_RC(rsm_get_controller("shm0", &released), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(released), RSM_SUCCESS);
    CHECK_RC(rsm_get_controller("loopback", &live), RSM_SUCCESS);

    /* A controller handle with its kind bits changed is a wrong-kind handle;
     * the others are plain garbage, including real addresses. */
    uintptr_t wrong_kind = ((uintptr_t)live & ~((uintptr_t)0xF << 56)) | ((uintptr_t)2 << 56);
    void *bad[] = {
        NULL,
        released,
        (void *)wrong_kind,
        (void *)(uintptr_t)1,
        (void *)(uintptr_t)-1,
        (void *)((uintptr_t)live + 1),
        (void *)((uintptr_t)live ^ ((uintptr_t)1 << 40)),
        &stack_var,
        (void *)main,
        (void *)(uintptr_t)0xA100000000000000ull,
    };
    rsmapi_controller_attr_t attr;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rsmapi_controller_handle_t h = (rsmapi_controller_handle_t)bad[i];
        CHECK_RC(rsm_get_controller_attr(h, &attr), RSMERR_BAD_CTLR_HNDL);
        CHECK_RC(rsm_release_controller(h), RSMERR_BAD_CTLR_HNDL);
    }
    /* The live handle was not disturbed by any of it. */
    CHECK_RC(rsm_get_controller_attr(live, &attr), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(live), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(live), RSMERR_BAD_CTLR_HNDL);
    return report("handles");
}
