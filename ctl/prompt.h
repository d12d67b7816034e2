/* dbctl's questions to the operator on a terminal: confirmations for the
 * mutating verbs, typed answers and passwords. Prompts go to stdout (the
 * password prompt to stderr), answers come from stdin; nothing is asked when
 * stdin is not a terminal. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

/* stdin is a terminal. */
bool ctl_is_interactive(void);

/* A mutating verb's confirmation: true with --force (arg_force); otherwise,
 * on a terminal, prints the question with " [y/N] " and returns whether the
 * answer starts with y or Y; false when stdin is not a terminal. The caller
 * prints the refusal ("not confirmed (use --force)"). */
_printf_(1, 2) bool ctl_confirm(const char *fmt, ...);

/* Prints prompt and reads one line from stdin into buf (without the
 * newline). Returns 0, or -EIO at end of input, -ENOBUFS for a longer line
 * (the rest is discarded). */
int ctl_ask(const char *prompt, char *buf, size_t size);

/* Asks for a secret: prints prompt to stderr (stdout may carry data), turns
 * the terminal's echo off, reads one line from stdin into buf (without the
 * newline), restores the echo and ends the prompt's line. Returns 0,
 * -ENOTTY when stdin is not a terminal (nothing asked), -EIO at end of
 * input, -ENOBUFS for a longer line. buf is zeroed unless 0 is returned. */
int ctl_ask_password(const char *prompt, char *buf, size_t size);
