/* What the benchmark drivers share: a monotonic clock and the median of
 * RUNS measurements (every figure they print is such a median). */
#ifndef BENCH_H
#define BENCH_H

#include <stdlib.h>
#include <time.h>

#define RUNS 5

static inline double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..RUNS); reorders v. */
static inline double median(double *v)
{
    qsort(v, RUNS, sizeof *v, cmp_double);
    return v[RUNS / 2];
}

#endif
