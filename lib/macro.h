/* Small helpers shared by every module: scope-bound cleanup, ownership hand-off
 * and array sizing. Modelled on systemd's cleanup-fundamental.h. */
#pragma once

#include <errno.h>
#include <stdlib.h>

#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _unused_       __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_     __attribute__((noreturn))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Hand ownership of *p to the caller and leave NULL behind, so a _cleanup_
 * variable does not free what was returned. */
#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) _ptr_ = (p);                                                                 \
        (p) = NULL;                                                                                \
        _ptr_;                                                                                     \
    })

/* Defines `static inline void fp(type **p)` that calls `f(*p)` when non-NULL
 * and then NULLs *p, for types whose destructor returns void. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, f)                                                       \
    static inline void f##p(type *p)                                                               \
    {                                                                                              \
        if (*p) {                                                                                  \
            f(*p);                                                                                 \
            *p = NULL;                                                                             \
        }                                                                                          \
    }

static inline void freep(void *p)
{
    free(*(void **)p);
    *(void **)p = NULL;
}
#define _cleanup_free_ _cleanup_(freep)

static inline const char *strna(const char *s)
{
    return s ? s : "n/a";
}

static inline const char *strempty(const char *s)
{
    return s ? s : "";
}

static inline int negative_errno(int e)
{
    return e > 0 ? -e : -EIO;
}
