/*
 * replay.c - runs a fuzz target without libFuzzer: every file of a seed
 * corpus, then deterministic random mutations of them.
 *
 * What and why: the libFuzzer binaries need clang and run for minutes;
 * this replay main links the same LLVMFuzzerTestOneInput into an ordinary
 * program that every build runs as a test (suite 'fuzz'), so that the
 * seeds (valid files, damaged files, past crashes) and a fixed set of
 * mutations are checked on every change, under ASan/UBSan in the
 * sanitizer build.
 *
 *   replay CORPUS_DIR [N_MUTATIONS]   (default 2000; env
 *                                      FUZZ_REPLAY_MUTATIONS overrides)
 *   replay FILE...                    (run exactly these inputs: a crash
 *                                      reproducer)
 * FUZZ_REPLAY_VERBOSE=1 prints each input's name before running it, so
 * that a crash names the input (mutation i of seed s is reproducible: the
 * mutations depend only on i and the sorted corpus).
 *
 * Invariants:
 *  1. Deterministic: the corpus is read in name order and mutation i uses
 *     a generator seeded with i only; no clock, no randomness.
 *  2. Inputs are copied into an exactly-sized malloc'd buffer, so ASan
 *     sees any read past the end.
 *
 * Thread-safety: single-threaded program.
 */
#include "fuzz.h"

#include <dirent.h>
#include <string.h>

#define REPLAY_MAX_INPUT ((size_t)1 << 20)

struct input {
	char *name;
	uint8_t *p;
	size_t len;
};

static uint64_t mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t below(uint64_t *s, size_t n)
{
	return n ? (size_t)(mix(s) % n) : 0;
}

static int read_input(const char *path, struct input *in)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	uint8_t *buf = malloc(REPLAY_MAX_INPUT);
	size_t n = buf ? fread(buf, 1, REPLAY_MAX_INPUT, f) : 0;
	fclose(f);
	if (!buf)
		return -1;
	in->name = strdup(path);
	in->p = malloc(n ? n : 1);
	if (!in->name || !in->p) {
		free(buf);
		return -1;
	}
	memcpy(in->p, buf, n);
	in->len = n;
	free(buf);
	return 0;
}

static void run_one(const char *name, const uint8_t *p, size_t len)
{
	static int verbose = -1;
	if (verbose < 0) {
		const char *v = getenv("FUZZ_REPLAY_VERBOSE");
		verbose = v && *v && *v != '0';
	}
	if (verbose) {
		fprintf(stderr, "replay: %s (%zu bytes)\n", name, len);
		fflush(stderr);
	}
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy) {
		fprintf(stderr, "replay: out of memory\n");
		exit(1);
	}
	if (len)
		memcpy(copy, p, len);
	LLVMFuzzerTestOneInput(copy, len);
	free(copy);
}

/* One mutated copy of a seed (malloc'd, *len set); other is a second seed
 * for splicing. */
static uint8_t *mutate(uint64_t *s, const struct input *in,
		       const struct input *other, size_t *len)
{
	size_t n = in->len, cap = n + 64;
	uint8_t *p = malloc(cap);
	if (!p)
		return NULL;
	memcpy(p, in->p, n);
	int rounds = 1 + (int)below(s, 4);
	for (int r = 0; r < rounds; r++) {
		switch (below(s, 8)) {
		case 0: /* flip one bit */
			if (n)
				p[below(s, n)] ^= (uint8_t)(1u << below(s, 8));
			break;
		case 1: { /* an interesting byte */
			static const uint8_t v[] = {0, 1, 0x7f, 0x80, 0xff};
			if (n)
				p[below(s, n)] = v[below(s, sizeof(v))];
			break;
		}
		case 2: { /* an interesting u32 (LE) */
			static const uint32_t v[] = {0,          1,  0x7fffffff,
						     0xffffffff, 64, 4096};
			if (n >= 4) {
				uint32_t x = v[below(s, 6)];
				size_t at = below(s, n - 3);
				for (int i = 0; i < 4; i++)
					p[at + (size_t)i] =
						(uint8_t)(x >> (8 * i));
			}
			break;
		}
		case 3: /* truncate */
			n = below(s, n + 1);
			break;
		case 4: { /* erase a range */
			if (!n)
				break;
			size_t at = below(s, n), k = 1 + below(s, 16);
			if (k > n - at)
				k = n - at;
			memmove(p + at, p + at + k, n - at - k);
			n -= k;
			break;
		}
		case 5: { /* insert random bytes */
			size_t k = 1 + below(s, 8), at = below(s, n + 1);
			if (n + k > cap)
				break;
			memmove(p + at + k, p + at, n - at);
			for (size_t i = 0; i < k; i++)
				p[at + i] = (uint8_t)mix(s);
			n += k;
			break;
		}
		case 6: { /* splice: a chunk of another seed */
			if (!other->len || !n)
				break;
			size_t from = below(s, other->len);
			size_t k = 1 + below(s, 32);
			size_t at = below(s, n);
			if (k > other->len - from)
				k = other->len - from;
			if (k > n - at)
				k = n - at;
			memcpy(p + at, other->p + from, k);
			break;
		}
		default: /* random byte */
			if (n)
				p[below(s, n)] = (uint8_t)mix(s);
		}
	}
	*len = n;
	return p;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(((const struct input *)a)->name,
		      ((const struct input *)b)->name);
}

int main(int argc, char **argv)
{
	struct input *ins = NULL;
	size_t n_ins = 0, cap = 0;
	struct stat st;
	long n_mut = 2000;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR [N] | FILE...\n",
			argv[0]);
		return 2;
	}
	if (stat(argv[1], &st) == 0 && !S_ISDIR(st.st_mode)) {
		for (int i = 1; i < argc; i++) {
			struct input in;
			if (read_input(argv[i], &in)) {
				fprintf(stderr, "replay: cannot read %s\n",
					argv[i]);
				return 1;
			}
			run_one(in.name, in.p, in.len);
			free(in.name);
			free(in.p);
		}
		printf("replay: %d inputs ok\n", argc - 1);
		return 0;
	}
	DIR *d = opendir(argv[1]);
	if (!d) {
		fprintf(stderr, "replay: cannot open %s\n", argv[1]);
		return 1;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		char path[4096];
		if (de->d_name[0] == '.')
			continue;
		int pl = snprintf(path, sizeof(path), "%s/%s", argv[1],
				  de->d_name);
		if (pl < 0 || (size_t)pl >= sizeof(path))
			continue;
		if (n_ins == cap) {
			cap = cap ? cap * 2 : 16;
			struct input *ni = realloc(ins, cap * sizeof(*ni));
			if (!ni)
				return 1;
			ins = ni;
		}
		if (read_input(path, &ins[n_ins]) == 0)
			n_ins++;
	}
	closedir(d);
	if (n_ins == 0) {
		fprintf(stderr, "replay: empty corpus %s\n", argv[1]);
		return 1;
	}
	qsort(ins, n_ins, sizeof(*ins), cmp_names);
	if (argc > 2)
		n_mut = strtol(argv[2], NULL, 10);
	const char *env_n = getenv("FUZZ_REPLAY_MUTATIONS");
	if (env_n && *env_n)
		n_mut = strtol(env_n, NULL, 10);

	for (size_t i = 0; i < n_ins; i++)
		run_one(ins[i].name, ins[i].p, ins[i].len);
	for (long i = 0; i < n_mut; i++) {
		uint64_t s = (uint64_t)i * 0x2545f4914f6cdd1dull + 1;
		size_t len = 0;
		const struct input *in = &ins[below(&s, n_ins)];
		const struct input *other = &ins[below(&s, n_ins)];
		uint8_t *p = mutate(&s, in, other, &len);
		if (!p)
			return 1;
		char name[64];
		snprintf(name, sizeof(name), "mutation %ld", i);
		run_one(name, p, len);
		free(p);
	}
	printf("replay: %zu seeds and %ld mutations ok\n", n_ins, n_mut);
	for (size_t i = 0; i < n_ins; i++) {
		free(ins[i].name);
		free(ins[i].p);
	}
	free(ins);
	return 0;
}
