/*
 * lsmfsctl.h - commands of the lsmfs helper tool, one function per
 * command family, and the control-socket client they share.
 *
 * Every command prints at most one clear line on failure (prefixed
 * "lsmfsctl: ") and returns the process exit status: 0 success, 1 the
 * command ran and found a problem (check, verify), 2 any error.
 */
#ifndef LSMFSCTL_H
#define LSMFSCTL_H

#include <stddef.h>

/* client.c: finds the store of an lsmfs mount (its source in
 * /proc/self/mounts) and calls the daemon over STORE/ctl.sock with the
 * protocol of fs/CTL.md. */
struct ctl_conn;
/* 0, or -1 after printing one line ("not an lsmfs mount", "daemon is not
 * running", ...). */
int ctl_open(const char *mount, struct ctl_conn **out);
const char *ctl_store(const struct ctl_conn *c);
/* Closes the connection ctl_open made without sending anything (the
 * daemon does not count that as an error); the next ctl_call connects
 * again. */
void ctl_disconnect(struct ctl_conn *c);
/* Sends verb and args, waits for the reply. 0 with *body (malloc'd,
 * NUL-terminated) on "ok"; -1 after printing the daemon's error line. */
int ctl_call(struct ctl_conn *c, const char *verb, const char *const *args,
	     size_t n_args, char **body, size_t *body_len);
void ctl_close(struct ctl_conn *c);

/* backup.c: "backup MOUNT NAME DEST", "backup list DEST",
 * "backup prune DEST --keep N", "verify DEST [NAME]",
 * "restore DEST NAME NEWSTORE". argv[0] is the command word. */
int cmd_backup(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_restore(int argc, char **argv);

/* check.c: "check STORE" (offline consistency check of an unmounted
 * store), and the test aids "debug-put STORE KEYHEX VALHEX" and
 * "debug-del STORE KEYHEX" (fs/CTL.md). */
int cmd_check(int argc, char **argv);
int cmd_debug(int argc, char **argv);

#endif /* LSMFSCTL_H */
