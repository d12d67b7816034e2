/* A main() for the fuzz targets without libFuzzer: runs
 * LLVMFuzzerTestOneInput once on each file named on the command line, and on
 * each file of each directory named (sorted by name; names starting with '.'
 * are skipped). `make fuzz-replay` builds it with gcc under the asan
 * variant's flags, so the committed corpus and crash inputs run as
 * regression tests. Exit status 0, or 1 when a path cannot be read. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* A larger input file is refused: corpus files are small. */
#define REPLAY_FILE_MAX (1024 * 1024)

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open \"%s\": %s\n", path, strerror(errno));
        return -errno;
    }
    uint8_t *buf = malloc(REPLAY_FILE_MAX);
    if (!buf) {
        fclose(f);
        return -ENOMEM;
    }
    size_t n = fread(buf, 1, REPLAY_FILE_MAX, f);
    bool too_large = n == REPLAY_FILE_MAX && fgetc(f) != EOF;
    bool failed = ferror(f);
    fclose(f);
    if (failed || too_large) {
        fprintf(stderr, "replay: cannot read \"%s\"%s\n", path, too_large ? ": too large" : "");
        free(buf);
        return -EIO;
    }
    /* A copy of exactly n bytes, so ASan sees any read past the input. */
    uint8_t *exact = malloc(n > 0 ? n : 1);
    if (!exact) {
        free(buf);
        return -ENOMEM;
    }
    memcpy(exact, buf, n);
    free(buf);
    (void)LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int skip_dot(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/* Returns the number of inputs run, or -errno. */
static int run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        fprintf(stderr, "replay: cannot stat \"%s\": %s\n", path, strerror(errno));
        return -errno;
    }
    if (!S_ISDIR(st.st_mode)) {
        int r = run_file(path);
        return r < 0 ? r : 1;
    }
    struct dirent **names = NULL;
    int n = scandir(path, &names, skip_dot, by_name);
    if (n < 0) {
        fprintf(stderr, "replay: cannot list \"%s\": %s\n", path, strerror(errno));
        return -errno;
    }
    int count = 0, r = 0;
    for (int i = 0; i < n; i++) {
        if (r >= 0) {
            size_t len = strlen(path) + 1 + strlen(names[i]->d_name) + 1;
            char *child = malloc(len);
            if (!child) {
                r = -ENOMEM;
            } else {
                (void)snprintf(child, len, "%s/%s", path, names[i]->d_name);
                r = run_path(child);
                free(child);
                if (r > 0) {
                    count += r;
                }
            }
        }
        free(names[i]);
    }
    free(names);
    return r < 0 ? r : count;
}

int main(int argc, char **argv)
{
    const char *self = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    int status = 0;
    for (int i = 1; i < argc; i++) {
        int r = run_path(argv[i]);
        if (r < 0) {
            status = 1;
            continue;
        }
        printf("%s: %d input%s from %s\n", self, r, r == 1 ? "" : "s", argv[i]);
    }
    return status;
}
