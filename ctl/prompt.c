/* Questions on a terminal. A verb asks only when stdin is a terminal, so a
 * script never blocks on a prompt: it gets a refusal that names --force. */
#include "prompt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "ctl.h"

/* Room for a y/N answer or a typed cluster name. */
#define PROMPT_ANSWER_MAX 256

bool ctl_is_interactive(void)
{
    return isatty(STDIN_FILENO);
}

int ctl_ask(const char *prompt, char *buf, size_t size)
{
    fputs(prompt, stdout);
    fflush(stdout);
    if (size == 0 || !fgets(buf, (int)size, stdin)) {
        return -EIO;
    }
    size_t n = strlen(buf);
    if (n > 0 && buf[n - 1] == '\n') {
        buf[n - 1] = '\0';
        return 0;
    }
    if (feof(stdin)) {
        return 0;
    }
    int c;
    while ((c = getchar()) != EOF && c != '\n') {
        /* discard the rest of an overlong line */
    }
    return -ENOBUFS;
}

int ctl_ask_password(const char *prompt, char *buf, size_t size)
{
    struct termios old, quiet;
    if (!ctl_is_interactive() || tcgetattr(STDIN_FILENO, &old) < 0) {
        return -ENOTTY;
    }
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    quiet.c_lflag |= ECHONL; /* the newline still shows, as getpass() does */
    /* echo off before the prompt shows: an answer typed at the prompt is
     * neither echoed nor discarded by TCSAFLUSH */
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0) {
        return -errno;
    }
    fputs(prompt, stderr);
    fflush(stderr);
    int r = size == 0 || !fgets(buf, (int)size, stdin) ? -EIO : 0;
    (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    if (r == 0) {
        size_t n = strlen(buf);
        if (n > 0 && buf[n - 1] == '\n') {
            buf[n - 1] = '\0';
        } else if (!feof(stdin)) {
            int c;
            while ((c = getchar()) != EOF && c != '\n') {
                /* discard the rest of an overlong line */
            }
            r = -ENOBUFS;
        }
    }
    if (r < 0 && size > 0) {
        explicit_bzero(buf, size);
    }
    return r;
}

bool ctl_confirm(const char *fmt, ...)
{
    if (arg_force) {
        return true;
    }
    if (!ctl_is_interactive()) {
        return false;
    }
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    char answer[PROMPT_ANSWER_MAX];
    if (ctl_ask(" [y/N] ", answer, sizeof(answer)) < 0) {
        return false;
    }
    return answer[0] == 'y' || answer[0] == 'Y';
}
