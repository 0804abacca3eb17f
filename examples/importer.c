/*
 * Connects to the exporter's segment, maps it, reads the greeting, writes
 * a message into its slot and waits for the exporter's answer, all through
 * plain loads and stores on the mapping.
 *
 * Usage: importer SLOT   (0 or 1)
 */
#define _DEFAULT_SOURCE /* valloc, usleep */
#include <rsmapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "board.h"

static void fail(const char *what, int rc)
{
    fprintf(stderr, "importer: %s failed: %d\n", what, rc);
    exit(1);
}

int main(int argc, char **argv)
{
    int slot = argc > 1 ? atoi(argv[1]) : 0;
    if (slot < 0 || slot >= BOARD_SLOTS) {
        fprintf(stderr, "usage: importer SLOT (0..%d)\n", BOARD_SLOTS - 1);
        return 2;
    }
    rsmapi_controller_handle_t ctrl;
    rsm_memseg_import_handle_t im;
    int rc;
    if ((rc = rsm_get_controller("shm0", &ctrl)) != RSM_SUCCESS) fail("rsm_get_controller", rc);
    /* The exporter may not have published yet: retry for a while. */
    for (int tries = 0;; tries++) {
        rc = rsm_memseg_import_connect(ctrl, 0, BOARD_SEGMENT_ID, RSM_PERM_RDWR, &im);
        if (rc == RSM_SUCCESS) break;
        if (rc != RSMERR_SEG_NOT_PUBLISHED || tries > 500) fail("rsm_memseg_import_connect", rc);
        usleep(10000);
    }
    struct board *board = NULL;
    rc = rsm_memseg_import_map(im, (void **)&board, RSM_MAP_NONE, RSM_PERM_RDWR, 0, sizeof *board);
    if (rc != RSM_SUCCESS) fail("rsm_memseg_import_map", rc);

    printf("importer %d: read \"%s\"\n", slot, board->greeting);
    snprintf(board->slot[slot].msg, sizeof board->slot[slot].msg, "hi, importer %d (pid %d) here",
             slot, (int)getpid());
    board->slot[slot].ready = 1;
    for (int waited = 0; !board->round; waited++) {
        if (waited > 1000) fail("waiting for the exporter", 0);
        usleep(10000);
    }
    printf("importer %d: read \"%s\"\n", slot, board->greeting);

    if ((rc = rsm_memseg_import_unmap(im)) != RSM_SUCCESS) fail("rsm_memseg_import_unmap", rc);
    if ((rc = rsm_memseg_import_disconnect(im)) != RSM_SUCCESS) fail("rsm_memseg_import_disconnect", rc);
    rsm_release_controller(ctrl);
    return 0;
}
