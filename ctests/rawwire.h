/*
 * A client of a segment's socket without the library, as a hostile local
 * process would be (src/transport/shm/wire.rs is the reference): it finds
 * the socket in /proc/net/unix and speaks the wire format by hand.
 */
#ifndef RSM_CTESTS_RAWWIRE_H
#define RSM_CTESTS_RAWWIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include "common.h"

#define WIRE_MAGIC 0x314D5352u        /* "RSM1": a connect request */
#define WIRE_VERSION 3u
#define WIRE_ATTACH_MAGIC 0x414D5352u /* "RSMA": an event channel request */

/* A connect request (16 bytes: magic, version, node, permission, as
 * little-endian words). */
static inline void wire_request(unsigned char b[16], uint32_t magic, uint32_t version, uint32_t node,
                                uint32_t perm)
{
    uint32_t w[4] = {magic, version, node, perm};
    for (int i = 0; i < 16; i++) b[i] = (unsigned char)(w[i / 4] >> (8 * (i % 4)));
}

/* An attach request (24 bytes: magic and version, token, secret). */
static inline void wire_attach(unsigned char b[24], uint64_t token, uint64_t secret)
{
    uint64_t w[3] = {(uint64_t)WIRE_ATTACH_MAGIC | ((uint64_t)WIRE_VERSION << 32), token, secret};
    for (int i = 0; i < 24; i++) b[i] = (unsigned char)(w[i / 8] >> (8 * (i % 8)));
}

/* The little-endian u64 at b (a reply's token at 24, secret at 32). */
static inline uint64_t wire_u64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

/* A connection to segment `id` of node 0 on `fabric`, whose socket is
 * found as any local user finds it: the entry of /proc/net/unix whose
 * path starts "@rsm/<fabric>/0/<id>/". -1 if none. Send and receive time
 * out after 10 s, a safety net only: nothing is timed. */
static inline int segment_socket(const char *fabric, uint32_t id)
{
    char prefix[128], line[512], name[108];
    snprintf(prefix, sizeof prefix, "@rsm/%s/0/%u/", fabric, (unsigned)id);
    FILE *f = fopen("/proc/net/unix", "r");
    int n = -1;
    while (f && n < 0 && fgets(line, sizeof line, f)) {
        char *path = strrchr(line, ' ');
        if (!path || strncmp(path + 1, prefix, strlen(prefix)) != 0) continue;
        path += 2; /* past the space and the '@' */
        path[strcspn(path, "\n")] = 0;
        if (strlen(path) < sizeof name) n = snprintf(name, sizeof name, "%s", path);
    }
    if (f) fclose(f);
    if (n < 0) return -1;
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path + 1, name, (size_t)n); /* abstract: sun_path[0] is NUL */
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&addr, alen) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Receives one packet of at most 64 bytes on `fd` into b: its length (-1:
 * none), with the number of descriptors it carried in *nfds. The first
 * `max` descriptors go to fds[] (the caller closes them); the rest, or
 * all when fds is NULL, are closed here. */
static inline ssize_t wire_recv(int fd, unsigned char b[64], int *fds, int max, int *nfds, int flags)
{
    union {
        char b[CMSG_SPACE(sizeof(int) * 8)];
        struct cmsghdr align;
    } u;
    struct iovec iov = {b, 64};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.b;
    msg.msg_controllen = sizeof u.b;
    ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | flags);
    *nfds = 0;
    for (struct cmsghdr *c = n < 0 ? NULL : CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < k; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
            if (fds && *nfds < max)
                fds[*nfds] = got;
            else
                close(got);
            ++*nfds;
        }
    }
    return n;
}

#endif
