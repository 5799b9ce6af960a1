/*
 * fuzz.h - what every fuzz target shares: the libFuzzer entry point's
 * prototype (each target defines it) and a helper that puts the input in
 * a temporary file for the decoders that read files.
 *
 * Targets must never crash, hang, leak or trip a sanitizer on any input;
 * a decoder's only acceptable answers are success or an error status. A
 * target that finds a broken invariant of a decoder's *successful* answer
 * calls fuzz_fail(), which aborts (a finding, like a crash).
 */
#ifndef TESTS_FUZZ_FUZZ_H
#define TESTS_FUZZ_FUZZ_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz: broken invariant: %s\n", what);
	abort();
}

/* Writes data to a per-process temporary file (in /dev/shm when there is
 * one: no disk I/O) named after `tag`; fills path (cap >= 128). Aborts if
 * the file cannot be written: that is the harness failing, not the
 * decoder. The caller unlinks the file. */
static inline void fuzz_temp_file(const char *tag, const uint8_t *data,
				  size_t size, char *path, size_t cap)
{
	struct stat st;
	const char *dir = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode)
				  ? "/dev/shm"
				  : "/tmp";
	int n = snprintf(path, cap, "%s/lsm_fuzz_%s_%d", dir, tag,
			 (int)getpid());
	if (n < 0 || (size_t)n >= cap)
		fuzz_fail("temp path too long");
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	if (fd < 0)
		fuzz_fail("cannot create the temp file");
	size_t done = 0;
	while (done < size) {
		ssize_t w = write(fd, data + done, size - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			fuzz_fail("cannot write the temp file");
		done += (size_t)w;
	}
	if (close(fd) != 0)
		fuzz_fail("cannot close the temp file");
}

#endif
