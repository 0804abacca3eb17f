/* The layout exporter.c and importer.c share: one page, a greeting from
 * the exporter and one slot per importer. */
#ifndef BOARD_H
#define BOARD_H

#define BOARD_SEGMENT_ID 0x500100u
#define BOARD_SLOTS 2

struct board {
    volatile int round;  /* the exporter bumps it when it has read every slot */
    char greeting[60];
    struct {
        volatile int ready; /* set by the importer after writing msg */
        char msg[60];
    } slot[BOARD_SLOTS];
};

#endif
