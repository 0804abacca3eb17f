/*
 * Exports one page of its own memory as segment BOARD_SEGMENT_ID, writes a
 * greeting into it, and waits until every importer has written its slot.
 * The importers' words appear in the exporter's own buffer: the memory is
 * shared in place.
 *
 * Build: cc exporter.c $(pkg-config --cflags --libs rsm)
 * Run:   ./exporter & ./importer 0 & ./importer 1
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
    fprintf(stderr, "exporter: %s failed: %d\n", what, rc);
    exit(1);
}

int main(void)
{
    long page = sysconf(_SC_PAGESIZE);
    struct board *board = valloc((size_t)page); /* page-aligned, as the API requires */
    memset(board, 0, (size_t)page);
    snprintf(board->greeting, sizeof board->greeting, "hello from exporter pid %d", (int)getpid());

    rsmapi_controller_handle_t ctrl;
    rsm_memseg_export_handle_t seg;
    rsm_memseg_id_t id = BOARD_SEGMENT_ID;
    int rc;
    if ((rc = rsm_get_controller("shm0", &ctrl)) != RSM_SUCCESS) fail("rsm_get_controller", rc);
    if ((rc = rsm_memseg_export_create(ctrl, &seg, board, (size_t)page, 0)) != RSM_SUCCESS)
        fail("rsm_memseg_export_create", rc);
    /* No access list: every node, with this process's umask-derived mode. */
    if ((rc = rsm_memseg_export_publish(seg, &id, NULL, 0)) != RSM_SUCCESS)
        fail("rsm_memseg_export_publish", rc);
    printf("exporter: published segment %#x (%ld bytes)\n", id, page);
    fflush(stdout);

    for (int i = 0; i < BOARD_SLOTS; i++) {
        for (int waited = 0; !board->slot[i].ready; waited++) {
            if (waited > 1000) fail("waiting for the importers", 0);
            usleep(10000);
        }
        printf("exporter: slot %d says \"%s\"\n", i, board->slot[i].msg);
    }
    snprintf(board->greeting, sizeof board->greeting, "goodbye, %d importers", BOARD_SLOTS);
    board->round = 1;
    fflush(stdout);
    sleep(1); /* let the importers read the goodbye before the segment goes */

    /* Destroy disconnects importers; the page is ours again, contents kept. */
    if ((rc = rsm_memseg_export_destroy(seg)) != RSM_SUCCESS) fail("rsm_memseg_export_destroy", rc);
    printf("exporter: destroyed; my buffer still says \"%s\"\n", board->slot[0].msg);
    rsm_release_controller(ctrl);
    free(board);
    return 0;
}
