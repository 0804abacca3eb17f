/*
 * LD_PRELOAD for `make ctests-valgrind` (mk/sanitize.mk): three things the
 * kernel does that valgrind does not model, filled in. Outside valgrind
 * the wrappers only make the call.
 *
 * process_vm_writev on our own pid. librsm stores results into caller
 * memory this way (src/uaccess.rs, copy_out), so that a bad pointer is
 * EFAULT rather than a crash. Memcheck takes the destination for another
 * process's memory and never marks it written: every handle and value
 * returned so looks uninitialised, and the error spreads to everything
 * computed from it. The wrapper makes the same system call (memcheck
 * still checks that the bytes sent are initialised) and then copies
 * memcheck's definedness bits from source to destination, as a memcpy
 * would. (process_vm_readv needs nothing: memcheck marks what it read.)
 *
 * poll's limit. The kernel refuses nfds above RLIMIT_NOFILE with EINVAL.
 * Valgrind keeps the real limit for itself and only pretends to lower it,
 * so the kernel never sees the limit a test sets; the wrapper applies the
 * limit the program sees (events.c checks RSMERR_BAD_ARGS_ERRORS so).
 *
 * RLIMIT_AS. It bounds valgrind's own memory too, and valgrind dies
 * ("out of memory") rather than fail the program's allocation; a test
 * that lowers it asks getenv("RSM_UNDER_VALGRIND"), which the constructor
 * below sets, and skips that part.
 *
 * exec of /proc/self/exe. Tests re-execute themselves that way (data.c's
 * exporter, share.c's tight importer). Valgrind answers readlink and open
 * of /proc/self/exe with the program it runs, but passes execve the path
 * as it is, where it names valgrind's own tool binary, which cannot load
 * itself. The wrappers exec the program /proc/self/exe names for the
 * program (valgrind then follows it, --trace-children=yes).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#include <valgrind/memcheck.h>

/* Copies the V bits of the first n bytes of `from` onto `to`. */
static void copy_vbits(const struct iovec *from, unsigned long nfrom, const struct iovec *to,
                       unsigned long nto, size_t n)
{
    unsigned char bits[512];
    unsigned long i = 0, j = 0;
    size_t off_i = 0, off_j = 0;
    while (n > 0 && i < nfrom && j < nto) {
        size_t a = from[i].iov_len - off_i, b = to[j].iov_len - off_j;
        size_t k = a < b ? a : b;
        if (k > n) k = n;
        if (k > sizeof bits) k = sizeof bits;
        if (k > 0) {
            char *src = (char *)from[i].iov_base + off_i, *dst = (char *)to[j].iov_base + off_j;
            if (VALGRIND_GET_VBITS(src, bits, k) == 1) (void)VALGRIND_SET_VBITS(dst, bits, k);
            off_i += k;
            off_j += k;
            n -= k;
        }
        if (off_i == from[i].iov_len) i++, off_i = 0;
        if (off_j == to[j].iov_len) j++, off_j = 0;
    }
}

ssize_t process_vm_writev(pid_t pid, const struct iovec *local, unsigned long liovcnt,
                          const struct iovec *remote, unsigned long riovcnt, unsigned long flags)
{
    ssize_t n = syscall(SYS_process_vm_writev, pid, local, liovcnt, remote, riovcnt, flags);
    if (n > 0 && pid == getpid() && RUNNING_ON_VALGRIND)
        copy_vbits(local, liovcnt, remote, riovcnt, (size_t)n);
    return n;
}

int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    static int (*real)(struct pollfd *, nfds_t, int);
    if (!real) real = (int (*)(struct pollfd *, nfds_t, int))dlsym(RTLD_NEXT, "poll");
    struct rlimit rl;
    if (RUNNING_ON_VALGRIND && getrlimit(RLIMIT_NOFILE, &rl) == 0 && nfds > rl.rlim_cur) {
        errno = EINVAL;
        return -1;
    }
    return real(fds, nfds, timeout);
}

/* The program /proc/self/exe stands for, under valgrind; else `path`. */
static const char *self_exe(const char *path, char *buf)
{
    if (!RUNNING_ON_VALGRIND || !path || strcmp(path, "/proc/self/exe") != 0) return path;
    ssize_t n = readlink("/proc/self/exe", buf, PATH_MAX - 1); /* valgrind: the client */
    if (n <= 0) return path;
    buf[n] = '\0';
    return buf;
}

extern char **environ;

int execve(const char *path, char *const argv[], char *const envp[])
{
    char buf[PATH_MAX];
    return (int)syscall(SYS_execve, self_exe(path, buf), argv, envp);
}

int execv(const char *path, char *const argv[])
{
    return execve(path, argv, environ);
}

int execl(const char *path, const char *arg, ...)
{
    char *argv[256];
    int n = 0;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; n < 255; a = va_arg(ap, const char *)) {
        argv[n++] = (char *)a;
        if (!a) break;
    }
    va_end(ap);
    argv[255] = NULL;
    return execve(path, argv, environ);
}

__attribute__((constructor)) static void mark_valgrind(void)
{
    setenv("RSM_UNDER_VALGRIND", "1", 1);
}
