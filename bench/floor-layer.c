/*
 * floor-layer: the floor loop of bench/run.sh's full layers, what a layer's
 * unavoidable work costs with nothing else around it.
 *
 *   floor-layer [-z] [-v] LIST OUT
 *
 * LIST holds the regular files of the tree, NUL-separated, in the order to
 * write them ('-' is stdin); it is read whole first.  Three threads, the
 * shape of layersnap's pipeline with every stage at its cheapest:
 *   - the reader opens each file (O_NOFOLLOW | O_NOATIME), puts a 512-byte
 *     block before it (a tar's framing: zeros and the name, no header
 *     formatted), reads its bytes straight into the 1 MiB chunk being filled
 *     (no other copy), pads them to 512 and closes it;
 *   - the hasher takes the chunks in order and hashes them with SHA-256
 *     (OpenSSL's EVP: SHA-NI where the CPU has it), as a layer's diff_id;
 *     with -z it also compresses them with libzstd at level 3 (a worker per
 *     online CPU, 8 MiB jobs, as layersnap) and hashes that blob too;
 *   - the writer writes the chunks, or the blob, to OUT in order.
 *
 * No walk, no directories, links or metadata, no check that a file stayed
 * the same while read: a lower bound of any tool that writes the same bytes
 * and names their digest, not a rival.  Reports nothing (-v: files and
 * bytes, on stderr); exits 0, or 1 with a message on stderr.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define CHUNK  (1024u * 1024)
#define NSLOTS 4u
#define BLOCK  512u
#define OUTCAP (256u * 1024)
#define ZJOB   (8u * 1024 * 1024)

struct slot {
	unsigned char *buf;
	size_t len;
	unsigned char *out;  /* -z: the blob made of buf */
	size_t out_len;
};

/* Chunk k lives in slot k % NSLOTS; the counters only grow, under lock. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct slot slot[NSLOTS];
	uint64_t filled, hashed, written;
	bool done;
} ring = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

static int out_fd = -1;
static bool zstd;

static void die(const char *what, const char *name)
{
	fprintf(stderr, "floor-layer: %s%s%s: %s\n", what, name ? " " : "", name ? name : "",
		strerror(errno));
	exit(1);
}

/* Waits, with the lock held, until pred() holds. */
#define WAIT_UNTIL(pred)                                           \
	do {                                                       \
		while (!(pred))                                    \
			pthread_cond_wait(&ring.wake, &ring.lock); \
	} while (0)

static void write_all(const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(out_fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("write", NULL);
		}
		p += w;
		n -= (size_t)w;
	}
}

static void *hasher(void *arg)
{
	(void)arg;
	EVP_MD_CTX *tar = EVP_MD_CTX_new(), *blob = EVP_MD_CTX_new();
	ZSTD_CCtx *zc = NULL;
	if (!tar || !blob || EVP_DigestInit_ex(tar, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestInit_ex(blob, EVP_sha256(), NULL) != 1)
		die("sha256", NULL);
	if (zstd) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		zc = ZSTD_createCCtx();
		if (!zc || ZSTD_isError(ZSTD_CCtx_setParameter(zc, ZSTD_c_compressionLevel, 3)) ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(zc, ZSTD_c_nbWorkers, cpus > 0 ? (int)cpus : 1)) ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(zc, ZSTD_c_jobSize, (int)ZJOB))) {
			errno = EINVAL;
			die("zstd", NULL);
		}
	}
	pthread_mutex_lock(&ring.lock);
	for (;;) {
		WAIT_UNTIL(ring.hashed < ring.filled || ring.done);
		if (ring.hashed == ring.filled)
			break;
		struct slot *s = &ring.slot[ring.hashed % NSLOTS];
		bool last = ring.done && ring.hashed + 1 == ring.filled;
		pthread_mutex_unlock(&ring.lock);
		EVP_DigestUpdate(tar, s->buf, s->len);
		s->out_len = 0;
		if (zstd) {
			/* One chunk's blob in s->out: grown as libzstd hands it over. */
			ZSTD_inBuffer in = { s->buf, s->len, 0 };
			size_t cap = OUTCAP;
			for (;;) {
				if (s->out_len == cap) {
					cap *= 2;
					s->out = realloc(s->out, cap);
					if (!s->out)
						die("zstd", NULL);
				}
				ZSTD_outBuffer o = { s->out, cap, s->out_len };
				size_t rem = ZSTD_compressStream2(zc, &o, &in, last ? ZSTD_e_end : ZSTD_e_continue);
				s->out_len = o.pos;
				if (ZSTD_isError(rem)) {
					errno = EIO;
					die("zstd", NULL);
				}
				if (last ? rem == 0 : in.pos == in.size)
					break;
			}
			EVP_DigestUpdate(blob, s->out, s->out_len);
		}
		pthread_mutex_lock(&ring.lock);
		ring.hashed++;
		pthread_cond_broadcast(&ring.wake);
	}
	pthread_mutex_unlock(&ring.lock);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n;
	EVP_DigestFinal_ex(tar, md, &n);
	EVP_DigestFinal_ex(blob, md, &n);
	EVP_MD_CTX_free(tar);
	EVP_MD_CTX_free(blob);
	ZSTD_freeCCtx(zc);
	return NULL;
}

static void *writer(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&ring.lock);
	for (;;) {
		WAIT_UNTIL(ring.written < ring.hashed || (ring.done && ring.hashed == ring.filled));
		if (ring.written == ring.filled)
			break;
		struct slot *s = &ring.slot[ring.written % NSLOTS];
		pthread_mutex_unlock(&ring.lock);
		if (zstd)
			write_all(s->out, s->out_len);
		else
			write_all(s->buf, s->len);
		pthread_mutex_lock(&ring.lock);
		ring.written++;
		pthread_cond_broadcast(&ring.wake);
	}
	pthread_mutex_unlock(&ring.lock);
	return NULL;
}

/* The chunk being filled, waiting for a free slot. */
static struct slot *filling(void)
{
	pthread_mutex_lock(&ring.lock);
	WAIT_UNTIL(ring.filled - ring.written < NSLOTS);
	pthread_mutex_unlock(&ring.lock);
	return &ring.slot[ring.filled % NSLOTS];
}

static struct slot *hand_over(void)
{
	pthread_mutex_lock(&ring.lock);
	ring.filled++;
	pthread_cond_broadcast(&ring.wake);
	pthread_mutex_unlock(&ring.lock);
	struct slot *s = filling();
	s->len = 0;
	return s;
}

/* Appends n bytes of zeros (or of src) to the chunk stream. */
static struct slot *put(struct slot *s, const void *src, size_t n)
{
	while (n > 0) {
		size_t c = CHUNK - s->len < n ? CHUNK - s->len : n;
		if (src) {
			memcpy(s->buf + s->len, src, c);
			src = (const char *)src + c;
		} else {
			memset(s->buf + s->len, 0, c);
		}
		s->len += c;
		n -= c;
		if (s->len == CHUNK)
			s = hand_over();
	}
	return s;
}

static char *read_list(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "re") : stdin;
	if (!f)
		die("open", path);
	size_t cap = 1 << 20, n = 0;
	char *buf = malloc(cap + 1);
	for (;;) {
		if (!buf)
			die("list", path);
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (n < cap)
			break;
		cap *= 2;
		buf = realloc(buf, cap + 1);
	}
	if (ferror(f))
		die("read", path);
	if (f != stdin)
		fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

int main(int argc, char **argv)
{
	bool verbose = false;
	int opt;
	while ((opt = getopt(argc, argv, "zv")) != -1) {
		switch (opt) {
		case 'z':
			zstd = true;
			break;
		case 'v':
			verbose = true;
			break;
		default:
			fprintf(stderr, "usage: floor-layer [-z] [-v] LIST OUT\n");
			return 2;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: floor-layer [-z] [-v] LIST OUT\n");
		return 2;
	}
	size_t list_len;
	char *list = read_list(argv[optind], &list_len);
	out_fd = open(argv[optind + 1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out_fd < 0)
		die("open", argv[optind + 1]);
	for (unsigned i = 0; i < NSLOTS; i++) {
		ring.slot[i].buf = malloc(CHUNK);
		ring.slot[i].out = zstd ? malloc(OUTCAP) : NULL;
		if (!ring.slot[i].buf || (zstd && !ring.slot[i].out))
			die("malloc", NULL);
	}
	pthread_t th, tw;
	if (pthread_create(&th, NULL, hasher, NULL) || pthread_create(&tw, NULL, writer, NULL))
		die("pthread_create", NULL);

	uint64_t files = 0, bytes = 0;
	struct slot *s = filling();
	s->len = 0;
	for (char *p = list; p < list + list_len; p += strlen(p) + 1) {
		if (!*p)
			continue;
		int fd = open(p, O_RDONLY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC);
		if (fd < 0 && errno == EPERM)
			fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			die("open", p);
		unsigned char header[BLOCK] = { 0 };
		size_t nl = strlen(p);
		memcpy(header, p, nl < 100 ? nl : 100);
		s = put(s, header, BLOCK);
		uint64_t size = 0;
		for (;;) {
			ssize_t n = read(fd, s->buf + s->len, CHUNK - s->len);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				die("read", p);
			}
			if (n == 0)
				break;
			s->len += (size_t)n;
			size += (uint64_t)n;
			if (s->len == CHUNK)
				s = hand_over();
		}
		close(fd);
		if (size % BLOCK)
			s = put(s, NULL, BLOCK - size % BLOCK);
		files++;
		bytes += size;
	}
	s = put(s, NULL, 2 * BLOCK);
	/* The last chunk, even empty, ends the zstd frame. */
	pthread_mutex_lock(&ring.lock);
	ring.filled++;
	ring.done = true;
	pthread_cond_broadcast(&ring.wake);
	pthread_mutex_unlock(&ring.lock);
	pthread_join(th, NULL);
	pthread_join(tw, NULL);
	if (close(out_fd) != 0)
		die("close", argv[optind + 1]);
	if (verbose)
		fprintf(stderr, "floor-layer: %llu files, %llu bytes\n", (unsigned long long)files,
			(unsigned long long)bytes);
	for (unsigned i = 0; i < NSLOTS; i++) {
		free(ring.slot[i].buf);
		free(ring.slot[i].out);
	}
	free(list);
	return 0;
}
