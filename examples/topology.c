/*
 * Lists this node's controllers and the nodes each one reaches.
 *
 *   topology            print controllers, attributes and topology
 *   topology hold SECS  hold shm0 for SECS seconds (a peer to be seen)
 *
 * Build: cc topology.c $(pkg-config --cflags --libs rsm)
 * Try:   RSM_NODE_ID=1 ./topology hold 5 & RSM_NODE_ID=0 ./topology
 */
#include <rsmapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int show_controller(char *name)
{
    rsmapi_controller_handle_t ctrl;
    rsmapi_controller_attr_t attr;
    int rc = rsm_get_controller(name, &ctrl);
    if (rc != RSM_SUCCESS) {
        printf("  %-9s not present (%d)\n", name ? name : "(NULL)", rc);
        return rc;
    }
    rc = rsm_get_controller_attr(ctrl, &attr);
    if (rc == RSM_SUCCESS)
        printf("  %-9s page %zu B, max segment %zu MiB, up to %lu exports, access sizes 0x%x\n",
               name ? name : "(NULL)", attr.attr_page_size,
               attr.attr_max_export_segment_size >> 20, attr.attr_max_export_segments,
               attr.attr_direct_access_sizes);
    rsm_release_controller(ctrl);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "hold") == 0) {
        rsmapi_controller_handle_t ctrl;
        int rc = rsm_get_controller("shm0", &ctrl);
        if (rc != RSM_SUCCESS) {
            fprintf(stderr, "rsm_get_controller(shm0): %d\n", rc);
            return 1;
        }
        sleep((unsigned)atoi(argv[2]));
        return rsm_release_controller(ctrl) == RSM_SUCCESS ? 0 : 1;
    }

    printf("controllers:\n");
    show_controller("loopback");
    show_controller("shm0");

    rsm_topology_t *topo;
    int rc = rsm_get_interconnect_topology(&topo);
    if (rc != RSM_SUCCESS) {
        fprintf(stderr, "rsm_get_interconnect_topology: %d\n", rc);
        return 1;
    }
    printf("topology: local node %u, %u controller(s)\n", topo->topology_hdr.local_nodeid,
           topo->topology_hdr.local_cntlr_count);
    for (uint_t i = 0; i < topo->topology_hdr.local_cntlr_count; i++) {
        rsm_connections_t *conn = topo->connections[i];
        printf("  %s (hwaddr %llu): %d remote node(s)\n", conn->hdr.cntlr_name,
               (unsigned long long)conn->hdr.local_hwaddr, conn->hdr.remote_cntlr_count);
        for (int j = 0; j < conn->hdr.remote_cntlr_count; j++) {
            rsm_remote_cntlr_t *r = &conn->remote_cntlr[j];
            printf("    node %u via %s, hwaddr %llu, %s\n", r->remote_nodeid, r->remote_cntlrname,
                   (unsigned long long)r->remote_hwaddr,
                   r->connection_state == RSM_CONNECTION_ACTIVE ? "active" : "not active");
        }
    }
    rsm_free_interconnect_topology(topo);
    return 0;
}
