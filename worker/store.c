/*
 * Uploaded files: the spool every upload is written to, the helpers both
 * backends share (ids, names, type sniffing, URL signatures), and the
 * dispatch to store_local.c or store_s3.c. See store.h.
 */
#define _GNU_SOURCE
#include "worker/store.h"

#include "common/buf.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "common/utf8.h"
#include "worker/store_local.h"
#include "worker/store_s3.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CH_STORE_DIR_MODE 0750
#define CH_STORE_FILE_MODE 0640
#define CH_STORE_SPOOL_SUFFIX ".part"

struct ch_store {
	char dir[CH_PATH_MAX + 8];
	char tmp[CH_PATH_MAX + 16];
	struct ch_store_s3 *s3;		/* NULL for the local backend */
};

struct ch_store_upload {
	struct ch_store *s;
	int fd;
	uint64_t size;
	EVP_MD_CTX *sha;
	char path[CH_PATH_MAX + 64];
};

void ch_store_set_err(struct ch_store_err *err, int status, const char *code, const char *msg)
{
	err->status = status;
	snprintf(err->code, sizeof(err->code), "%s", code);
	snprintf(err->message, sizeof(err->message), "%s", msg);
}

/* ---------------------------------------------------------------------- */
/* Opening                                                                */

static int make_dir(const char *path)
{
	if (mkdir(path, CH_STORE_DIR_MODE) < 0 && errno != EEXIST) {
		ch_err("mkdir %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

struct ch_store *ch_store_open(const struct ch_config *cfg)
{
	struct ch_store *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (cfg->upload_dir[0])
		snprintf(s->dir, sizeof(s->dir), "%s", cfg->upload_dir);
	else
		snprintf(s->dir, sizeof(s->dir), "%s/files", cfg->data_dir);
	snprintf(s->tmp, sizeof(s->tmp), "%s/tmp", s->dir);
	if (make_dir(s->dir) < 0 || make_dir(s->tmp) < 0)
		goto fail;
	if (cfg->upload_backend == CH_UPLOAD_S3) {
		s->s3 = ch_store_s3_open(cfg);
		if (!s->s3)
			goto fail;
	}
	return s;
fail:
	free(s);
	return NULL;
}

void ch_store_close(struct ch_store *s)
{
	if (!s)
		return;
	ch_store_s3_close(s->s3);
	free(s);
}

int ch_store_is_s3(const struct ch_store *s)
{
	return s->s3 != NULL;
}

/* ---------------------------------------------------------------------- */
/* The spool                                                              */

static int random_hex(char *out, size_t bytes)
{
	unsigned char r[CH_STORE_ID_RAND_BYTES];

	if (bytes > sizeof(r) || getrandom(r, bytes, 0) != (ssize_t)bytes)
		return -1;
	ch_hex(r, bytes, out);
	return 0;
}

struct ch_store_upload *ch_store_begin(struct ch_store *s, struct ch_store_err *err)
{
	struct ch_store_upload *u = calloc(1, sizeof(*u));
	char name[2 * CH_STORE_ID_RAND_BYTES + 1];

	if (!u || random_hex(name, CH_STORE_ID_RAND_BYTES) < 0)
		goto fail;
	u->s = s;
	snprintf(u->path, sizeof(u->path), "%s/%s" CH_STORE_SPOOL_SUFFIX, s->tmp, name);
	/* Read-write: the S3 backend sends the spool from this descriptor. */
	u->fd = open(u->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, CH_STORE_FILE_MODE);
	if (u->fd < 0) {
		ch_err("open %s: %s", u->path, strerror(errno));
		goto fail;
	}
	u->sha = EVP_MD_CTX_new();
	if (!u->sha || EVP_DigestInit_ex(u->sha, EVP_sha256(), NULL) != 1) {
		close(u->fd);
		unlink(u->path);
		EVP_MD_CTX_free(u->sha);
		goto fail;
	}
	return u;
fail:
	free(u);
	ch_store_set_err(err, 500, "storage_error", "could not start storing the file");
	return NULL;
}

int ch_store_write(struct ch_store_upload *u, const void *p, size_t n, struct ch_store_err *err)
{
	const char *b = p;
	size_t left = n;

	while (left) {
		ssize_t w;
		/* Failpoint "store_write": eio and enospc fail the write,
		 * short writes one byte (the loop must carry on). */
		switch (CH_FAILPOINT("store_write")) {
		case CH_FP_NONE:
			w = write(u->fd, b, left);
			break;
		case CH_FP_SHORT:
			w = write(u->fd, b, 1);
			break;
		case CH_FP_ENOSPC:
			errno = ENOSPC;
			w = -1;
			break;
		default:
			errno = EIO;
			w = -1;
			break;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			ch_err("write %s: %s", u->path, strerror(errno));
			ch_store_set_err(err, errno == ENOSPC ? 507 : 500, "storage_error",
					 errno == ENOSPC ? "the server is out of disk space"
							 : "could not write the file");
			return -1;
		}
		b += w;
		left -= (size_t)w;
	}
	EVP_DigestUpdate(u->sha, p, n);
	u->size += n;
	return 0;
}

void ch_store_abort(struct ch_store_upload *u)
{
	if (!u)
		return;
	close(u->fd);
	if (unlink(u->path) < 0 && errno != ENOENT)
		ch_warn("unlink %s: %s", u->path, strerror(errno));
	EVP_MD_CTX_free(u->sha);
	free(u);
}

int ch_store_commit(struct ch_store_upload *u, struct ch_store_meta *meta,
		    struct ch_store_err *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct timespec ts;
	int rc = -1;

	EVP_DigestFinal_ex(u->sha, md, &mdlen);
	ch_hex(md, mdlen < CH_STORE_SHA_HEX / 2 ? mdlen : CH_STORE_SHA_HEX / 2, meta->sha256);
	meta->size = u->size;
	clock_gettime(CLOCK_REALTIME, &ts);
	meta->created_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (u->s->s3) {
		/* No fdatasync: the spool is thrown away once the service has it. */
		rc = ch_store_s3_put(u->s->s3, u->fd, meta, err);
	} else if (fdatasync(u->fd) < 0) {
		/* On disk before it is announced: a posted file must survive a crash. */
		ch_err("fdatasync %s: %s", u->path, strerror(errno));
		ch_store_set_err(err, 500, "storage_error", "could not write the file");
	} else {
		rc = ch_store_local_commit(u->s->dir, u->path, meta, err);
	}
	ch_store_abort(u);	/* the spool goes either way (renamed away when local) */
	return rc;
}

/* ---------------------------------------------------------------------- */
/* URLs and removal                                                       */

int ch_store_url(struct ch_store *s, const char *id, int64_t expires_s,
		 const unsigned char *key, size_t keylen, char *out, size_t len)
{
	char sig[CH_STORE_SHA_HEX + 1];

	if (s->s3)
		return ch_store_s3_url(s->s3, id, expires_s, out, len);
	ch_store_sign(key, keylen, id, expires_s, sig);
	int n = snprintf(out, len, "/files/%s?expires=%lld&sig=%s", id, (long long)expires_s,
			 sig);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

int ch_store_remove(struct ch_store *s, const char *id)
{
	if (!ch_store_valid_id(id))
		return 1;
	if (s->s3)
		return ch_store_s3_remove(s->s3, id);
	return ch_store_local_remove(s->dir, id);
}

const char *ch_store_local_dir(const struct ch_store *s)
{
	return s->dir;
}

/* ---------------------------------------------------------------------- */
/* Pure helpers                                                           */

static int ext_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int ch_store_valid_id(const char *id)
{
	size_t n = strlen(id), i;

	if (n < 2 * CH_STORE_ID_RAND_BYTES || n > CH_STORE_ID_MAX)
		return 0;
	for (i = 0; i < 2 * CH_STORE_ID_RAND_BYTES; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return 0;
	if (i == n)
		return 1;
	if (id[i++] != '.' || i == n)
		return 0;
	for (; i < n; i++)
		if (!ext_char(id[i]))
			return 0;
	return 1;
}

int ch_store_make_id(const char *name, char id[CH_STORE_ID_MAX + 1])
{
	const char *dot = strrchr(name, '.');
	char ext[CH_STORE_EXT_MAX + 1] = "";

	if (dot && dot != name && dot[1]) {
		size_t n = strlen(dot + 1), i;
		for (i = 0; i < n && n <= CH_STORE_EXT_MAX; i++) {
			char c = dot[1 + i];
			if (c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			if (!ext_char(c))
				break;
			ext[i] = c;
		}
		ext[i == n && n <= CH_STORE_EXT_MAX ? i : 0] = '\0';
	}
	if (random_hex(id, CH_STORE_ID_RAND_BYTES) < 0)
		return -1;
	if (ext[0])
		snprintf(id + 2 * CH_STORE_ID_RAND_BYTES, CH_STORE_EXT_MAX + 2, ".%s", ext);
	return 0;
}

void ch_store_clean_name(const char *name, char out[CH_STORE_NAME_MAX + 1])
{
	const char *base = name;
	size_t o = 0;

	for (const char *p = name; *p; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	for (const char *p = base; *p && o < CH_STORE_NAME_MAX; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == 0x7f || c == '"')
			continue;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	/* Cut back to the longest valid UTF-8 prefix (a name cut inside a
	 * character, or one that was never UTF-8). */
	while (o > 0 && !ch_utf8_valid(out, o))
		out[--o] = '\0';
	if (strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
		o = 0;
	if (o == 0)
		snprintf(out, CH_STORE_NAME_MAX + 1, "file");
}

const char *ch_store_sniff(const unsigned char *p, size_t n)
{
	static const struct {
		const char *magic;
		size_t len;
		const char *type;
	} sigs[] = {
		{ "\x89PNG\r\n\x1a\n", 8, "image/png" },
		{ "\xff\xd8\xff", 3, "image/jpeg" },
		{ "GIF87a", 6, "image/gif" },
		{ "GIF89a", 6, "image/gif" },
		{ "%PDF-", 5, "application/pdf" },
	};

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (n >= sigs[i].len && memcmp(p, sigs[i].magic, sigs[i].len) == 0)
			return sigs[i].type;
	if (n >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
		return "image/webp";
	return CH_STORE_DEFAULT_TYPE;
}

int ch_store_type_inline(const char *type)
{
	return strncmp(type, "image/", 6) == 0;
}

void ch_store_sign(const unsigned char *key, size_t keylen, const char *id, int64_t expires_s,
		   char out[CH_STORE_SHA_HEX + 1])
{
	char msg[CH_STORE_ID_MAX + 32];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	int n = snprintf(msg, sizeof(msg), "%s\n%lld", id, (long long)expires_s);
	HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, (size_t)n, md, &mdlen);
	ch_hex(md, mdlen < CH_STORE_SHA_HEX / 2 ? mdlen : CH_STORE_SHA_HEX / 2, out);
}

int ch_store_check_sig(const unsigned char *key, size_t keylen, const char *id,
		       int64_t expires_s, const char *sig, size_t sig_len, int64_t now_s)
{
	char want[CH_STORE_SHA_HEX + 1];

	if (now_s >= expires_s || sig_len != CH_STORE_SHA_HEX)
		return 0;
	ch_store_sign(key, keylen, id, expires_s, want);
	return CRYPTO_memcmp(want, sig, CH_STORE_SHA_HEX) == 0;
}
