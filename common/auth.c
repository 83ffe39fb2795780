/*
 * Names, password hashes, tokens and the key file: see auth.h.
 *
 * Invariants:
 * - Every crypt_data passed in is wiped (explicit_bzero) before a password
 *   function returns, so no password-derived state outlives the call in
 *   the pool thread's buffer.
 * - jwt_decode never sees a key length below CH_KEY_MIN_BYTES: libjwt 1.10
 *   accepts alg "none" when the key length is 0.
 * - No key is ever a constant: it comes from getrandom() or from a file
 *   that passed the checks of ch_key_load_or_create.
 */
#define _GNU_SOURCE
#include "common/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <jwt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

#define AUTH_SALT_BYTES 16		/* what bcrypt needs; yescrypt takes 16+ */
#define AUTH_YESCRYPT_COST_MIN 1	/* libxcrypt's range for "$y$" */
#define AUTH_YESCRYPT_COST_MAX 11
#define AUTH_BCRYPT_COST_DIGITS 2	/* "$2b$NN$" */
#define AUTH_KEY_FILE_MODE 0600
#define AUTH_KEY_MODE_OTHERS 077	/* group and other bits: must be clear */
#define AUTH_TMP_SUFFIX_BYTES 8
#define AUTH_INT_CLAIM_MAX 32		/* digits of an iat/exp claim's JSON */

/* ---------------------------------------------------------------- */
/* names and passwords                                               */
/* ---------------------------------------------------------------- */

static int is_lower_digit(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int ch_valid_username(const char *s, size_t len)
{
	if (!s || len < 1 || len > CH_USERNAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!is_lower_digit(c) && c != '_' && c != '.' && c != '-')
			return 0;
	}
	return 1;
}

int ch_is_dm_room(const char *s, size_t len)
{
	const size_t pre = sizeof(CH_DM_PREFIX) - 1;

	if (!s || len <= pre || len > CH_ROOM_NAME_MAX || memcmp(s, CH_DM_PREFIX, pre) != 0)
		return 0;
	const char *a = s + pre, *end = s + len;
	const char *colon = memchr(a, ':', (size_t)(end - a));
	if (!colon)
		return 0;
	size_t al = (size_t)(colon - a), bl = (size_t)(end - colon - 1);
	if (!ch_valid_username(a, al) || !ch_valid_username(colon + 1, bl))
		return 0;
	int c = memcmp(a, colon + 1, al < bl ? al : bl);
	return c < 0 || (c == 0 && al <= bl);
}

void ch_dm_room(char *out, const char *a, const char *b)
{
	if (strcmp(a, b) > 0) {
		const char *t = a;
		a = b;
		b = t;
	}
	snprintf(out, CH_ROOM_NAME_MAX + 1, CH_DM_PREFIX "%s:%s", a, b);
}

int ch_valid_room_id(const char *s, size_t len)
{
	if (s && len > CH_ROOM_ID_MAX && len <= CH_ROOM_NAME_MAX)
		return ch_is_dm_room(s, len);
	if (!s || len < 1 || len > CH_ROOM_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!is_lower_digit(c) && !(c >= 'A' && c <= 'Z') &&
		    c != '_' && c != '.' && c != ':' && c != '-')
			return 0;
	}
	return 1;
}

int ch_valid_password(const char *pw, size_t len)
{
	if (!pw || len < CH_PASSWORD_MIN || len > CH_PASSWORD_MAX)
		return 0;
	return memchr(pw, '\0', len) == NULL;
}

/* ---------------------------------------------------------------- */
/* password hashes                                                   */
/* ---------------------------------------------------------------- */

static int fill_random(void *buf, size_t n)
{
	unsigned char *p = buf;

	while (n > 0) {
		ssize_t got = getrandom(p, n, 0);

		if (got < 0) {
			if (errno == EINTR)
				continue;
			ch_err_sys("getrandom");
			return -1;
		}
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

static const char *prefix_or_default(const char *prefix)
{
	return prefix ? prefix : CH_PASSWORD_PREFIX_DEFAULT;
}

/* libcrypt's failure convention: NULL, or a string starting with '*'. */
static int crypt_failed(const char *s)
{
	return !s || s[0] == '*';
}

/* Setting for (prefix, cost) with a fixed salt, for comparing parameters. */
static int reference_setting(const char *prefix, unsigned long cost,
			     char *out, int outlen)
{
	static const char zero_salt[AUTH_SALT_BYTES];

	return crypt_failed(crypt_gensalt_rn(prefix, cost, zero_salt,
					     (int)sizeof(zero_salt), out,
					     outlen)) ? -1 : 0;
}

int ch_password_config_check(const char *prefix, unsigned long cost)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];

	prefix = prefix_or_default(prefix);
	if ((strcmp(prefix, CH_PASSWORD_PREFIX_YESCRYPT) != 0 &&
	     strcmp(prefix, CH_PASSWORD_PREFIX_BCRYPT) != 0) ||
	    reference_setting(prefix, cost, setting, (int)sizeof(setting)) < 0) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

int ch_password_hash(const char *password, const char *prefix,
		     unsigned long cost, struct crypt_data *cd, char *out,
		     size_t outlen)
{
	char salt[AUTH_SALT_BYTES];
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	const char *hash;
	size_t n;
	int rc = -1, err = EINVAL;

	if (!password || !cd || !out || outlen == 0) {
		errno = EINVAL;
		return -1;
	}
	prefix = prefix_or_default(prefix);
	if (fill_random(salt, sizeof(salt)) < 0) {
		err = errno;
		goto out;
	}
	errno = 0;
	if (crypt_failed(crypt_gensalt_rn(prefix, cost, salt, (int)sizeof(salt),
					  setting, (int)sizeof(setting)))) {
		ch_err("crypt_gensalt_rn(\"%s\", %lu): %s", prefix, cost,
		       strerror(errno ? errno : EINVAL));
		goto out;
	}
	errno = 0;
	hash = crypt_rn(password, setting, cd, (int)sizeof(*cd));
	if (crypt_failed(hash)) {
		ch_err("crypt_rn(\"%s\"): %s", setting, strerror(errno ? errno : EINVAL));
		goto out;
	}
	n = strlen(hash);
	if (n >= outlen) {
		ch_err("ch_password_hash: %zu-byte hash, %zu-byte buffer", n, outlen);
		err = ERANGE;
		goto out;
	}
	memcpy(out, hash, n + 1);
	rc = 0;
	err = 0;
out:
	explicit_bzero(cd, sizeof(*cd));
	explicit_bzero(salt, sizeof(salt));
	if (rc < 0)
		errno = err;
	return rc;
}

/* 1 when a[0..n) == b[0..n), looking at every byte whatever they hold. */
static int equal_const_time(const char *a, const char *b, size_t n)
{
	unsigned char diff = 0;

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)b[i];
	/* volatile: keep the compiler from turning this into an early exit */
	return *(volatile unsigned char *)&diff == 0;
}

int ch_password_verify(const char *password, const char *stored_hash,
		       struct crypt_data *cd)
{
	const char *hash;
	size_t n;
	int rc;

	if (!password || !stored_hash || !cd) {
		errno = EINVAL;
		return -1;
	}
	if (stored_hash[0] == '\0' || stored_hash[0] == '*' ||
	    stored_hash[0] == '!') {
		errno = EINVAL;
		return -1;
	}
	hash = crypt_rn(password, stored_hash, cd, (int)sizeof(*cd));
	if (crypt_failed(hash)) {
		rc = -1;
	} else {
		/* The hash's length is its format's, not a secret. */
		n = strlen(hash);
		rc = n == strlen(stored_hash) && equal_const_time(hash, stored_hash, n);
	}
	explicit_bzero(cd, sizeof(*cd));
	if (rc < 0)
		errno = EINVAL;
	return rc;
}

/* Length of the method id: "$y$" -> 3, "$2b$" -> 4; 0 when not "$id$". */
static size_t method_len(const char *s)
{
	const char *end;

	if (s[0] != '$')
		return 0;
	end = strchr(s + 1, '$');
	return end ? (size_t)(end - s) + 1 : 0;
}

/* bcrypt's log2 rounds from "$2b$NN$...", or -1. */
static int bcrypt_cost(const char *setting, size_t mlen)
{
	const char *p = setting + mlen;

	for (int i = 0; i < AUTH_BCRYPT_COST_DIGITS; i++)
		if (p[i] < '0' || p[i] > '9')
			return -1;
	if (p[AUTH_BCRYPT_COST_DIGITS] != '$')
		return -1;
	return (p[0] - '0') * 10 + (p[1] - '0');
}

/*
 * yescrypt's cost (1..11) from "$y$PARAMS$...": the cost whose
 * crypt_gensalt parameters are PARAMS, or 0 when none is. Asking the
 * library keeps us out of yescrypt's parameter encoding.
 */
static unsigned long yescrypt_cost(const char *setting, size_t mlen)
{
	const char *params = setting + mlen;
	const char *end = strchr(params, '$');
	size_t plen;

	if (!end)
		return 0;
	plen = (size_t)(end - params);
	for (unsigned long c = AUTH_YESCRYPT_COST_MIN; c <= AUTH_YESCRYPT_COST_MAX; c++) {
		char ref[CRYPT_GENSALT_OUTPUT_SIZE];

		if (reference_setting(CH_PASSWORD_PREFIX_YESCRYPT, c, ref,
				      (int)sizeof(ref)) < 0)
			continue;
		if (strncmp(ref + mlen, params, plen) == 0 && ref[mlen + plen] == '$')
			return c;
	}
	return 0;
}

int ch_password_needs_upgrade(const char *stored_hash, const char *prefix,
			      unsigned long cost)
{
	char ref[CRYPT_GENSALT_OUTPUT_SIZE];
	size_t mlen;

	prefix = prefix_or_default(prefix);
	if (reference_setting(prefix, cost, ref, (int)sizeof(ref)) < 0)
		return 0;
	if (!stored_hash || crypt_checksalt(stored_hash) != CRYPT_SALT_OK)
		return 1;
	mlen = method_len(ref);
	if (mlen == 0 || strncmp(stored_hash, ref, mlen) != 0)
		return 1;
	if (strcmp(prefix, CH_PASSWORD_PREFIX_YESCRYPT) == 0) {
		/* Unknown parameters give 0, below every cost: upgraded. */
		return yescrypt_cost(stored_hash, mlen) < yescrypt_cost(ref, mlen);
	}
	if (prefix[1] == '2') {	/* the bcrypt family: $2a$ $2b$ $2y$ */
		int have = bcrypt_cost(stored_hash, mlen);

		return have < 0 || have < bcrypt_cost(ref, mlen);
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* tokens                                                            */
/* ---------------------------------------------------------------- */

static const char *const token_status_text[] = {
	[0] = "ok",
	[-CH_TOKEN_TOO_LONG] = "token too long",
	[-CH_TOKEN_MALFORMED] = "malformed token",
	[-CH_TOKEN_BAD_ALG] = "unsigned or not HS256",
	[-CH_TOKEN_BAD_SIGNATURE] = "bad signature",
	[-CH_TOKEN_EXPIRED] = "token expired",
	[-CH_TOKEN_NOT_YET_VALID] = "issued in the future",
	[-CH_TOKEN_BAD_CLAIMS] = "missing or invalid claims",
	[-CH_TOKEN_BAD_SUBJECT] = "invalid subject",
	[-CH_TOKEN_ERROR] = "internal error",
};

const char *ch_token_strerror(int status)
{
	size_t n = sizeof(token_status_text) / sizeof(token_status_text[0]);

	if (status > 0 || (size_t)-(long)status >= n)
		return "unknown token status";
	return token_status_text[-status];
}

static int key_len_ok(size_t keylen)
{
	return keylen >= CH_KEY_MIN_BYTES && keylen <= CH_KEY_MAX_BYTES;
}

int ch_token_create(const unsigned char *key, size_t keylen,
		    const char *username, int64_t iat_s, int64_t lifetime_s,
		    char *out, size_t outlen)
{
	jwt_t *jwt = NULL;
	char *str = NULL;
	int err = EINVAL;

	if (!key || !key_len_ok(keylen) || !username || !out ||
	    !ch_valid_username(username, strlen(username)) || iat_s < 0 ||
	    lifetime_s <= 0 || iat_s > LONG_MAX - lifetime_s)
		goto fail;
	err = ENOMEM;
	if (jwt_new(&jwt) != 0)
		goto fail;
	if (jwt_add_grant(jwt, "sub", username) != 0 ||
	    jwt_add_grant_int(jwt, "iat", (long)iat_s) != 0 ||
	    jwt_add_grant_int(jwt, "exp", (long)(iat_s + lifetime_s)) != 0 ||
	    jwt_set_alg(jwt, JWT_ALG_HS256, key, (int)keylen) != 0)
		goto fail;
	str = jwt_encode_str(jwt);
	if (!str)
		goto fail;
	err = ERANGE;
	if (strlen(str) >= outlen)
		goto fail;
	memcpy(out, str, strlen(str) + 1);
	free(str);
	jwt_free(jwt);
	return 0;
fail:
	free(str);
	jwt_free(jwt);
	errno = err;
	return -1;
}

static int is_b64url(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/*
 * Shape before content: three base64url segments, header and payload
 * non-empty. An empty signature is an unsigned token (alg none).
 */
static int token_shape(const char *token)
{
	size_t seg_len[3] = { 0, 0, 0 };
	int seg = 0;

	for (const char *p = token; *p; p++) {
		if (*p == '.') {
			if (++seg > 2)
				return CH_TOKEN_MALFORMED;
		} else if (is_b64url((unsigned char)*p)) {
			seg_len[seg]++;
		} else {
			return CH_TOKEN_MALFORMED;
		}
	}
	if (seg != 2 || seg_len[0] == 0 || seg_len[1] == 0)
		return CH_TOKEN_MALFORMED;
	if (seg_len[2] == 0)
		return CH_TOKEN_BAD_ALG;
	return CH_TOKEN_OK;
}

/*
 * An integer claim, strictly: its JSON text must be digits (libjwt 1.10's
 * jwt_get_grant_int returns 0 for a string or a float instead of failing).
 */
static int int_claim(jwt_t *jwt, const char *name, int64_t *out)
{
	char *json = jwt_get_grants_json(jwt, name);
	char *end;
	long long v;
	int rc = -1;

	if (!json)
		return -1;
	if (strlen(json) <= AUTH_INT_CLAIM_MAX && json[0] >= '0' && json[0] <= '9') {
		errno = 0;
		v = strtoll(json, &end, 10);
		if (errno == 0 && *end == '\0') {
			*out = v;
			rc = 0;
		}
	}
	free(json);
	return rc;
}

static int token_claims(jwt_t *jwt, int64_t now_s, struct ch_token_claims *claims)
{
	const char *sub = jwt_get_grant(jwt, "sub");
	int64_t iat, exp;
	size_t sub_len;

	if (jwt_get_alg(jwt) != JWT_ALG_HS256)
		return CH_TOKEN_BAD_ALG;
	if (!sub || int_claim(jwt, "iat", &iat) < 0 ||
	    int_claim(jwt, "exp", &exp) < 0 || exp <= iat)
		return CH_TOKEN_BAD_CLAIMS;
	sub_len = strlen(sub);
	if (!ch_valid_username(sub, sub_len))
		return CH_TOKEN_BAD_SUBJECT;
	if (iat > now_s + CH_TOKEN_IAT_SKEW_S)
		return CH_TOKEN_NOT_YET_VALID;
	if (now_s >= exp)
		return CH_TOKEN_EXPIRED;
	memcpy(claims->sub, sub, sub_len + 1);
	claims->iat = iat;
	claims->exp = exp;
	return CH_TOKEN_OK;
}

int ch_token_verify_claims(const unsigned char *key, size_t keylen,
			   const char *token, int64_t now_s,
			   struct ch_token_claims *claims)
{
	struct ch_token_claims got;
	jwt_t *jwt = NULL;
	int rc;

	if (!key || !key_len_ok(keylen) || !claims)
		return CH_TOKEN_ERROR;
	if (!token)
		return CH_TOKEN_MALFORMED;
	if (strnlen(token, CH_TOKEN_MAX_LEN + 1) > CH_TOKEN_MAX_LEN)
		return CH_TOKEN_TOO_LONG;
	rc = token_shape(token);
	if (rc != CH_TOKEN_OK)
		return rc;
	/* On failure jwt_decode frees what it made and leaves jwt NULL. */
	rc = jwt_decode(&jwt, token, key, (int)keylen);
	if (rc != 0 || !jwt)
		return rc == ENOMEM ? CH_TOKEN_ERROR : CH_TOKEN_BAD_SIGNATURE;
	rc = token_claims(jwt, now_s, &got);
	jwt_free(jwt);
	if (rc == CH_TOKEN_OK)
		*claims = got;
	return rc;
}

int ch_token_verify(const unsigned char *key, size_t keylen,
		    const char *token, int64_t now_s, char *user_out,
		    size_t user_len)
{
	struct ch_token_claims claims;
	int rc;

	if (!user_out)
		return CH_TOKEN_ERROR;
	rc = ch_token_verify_claims(key, keylen, token, now_s, &claims);
	if (rc != CH_TOKEN_OK)
		return rc;
	if (strlen(claims.sub) >= user_len)
		return CH_TOKEN_ERROR;
	memcpy(user_out, claims.sub, strlen(claims.sub) + 1);
	return CH_TOKEN_OK;
}

/* ---------------------------------------------------------------- */
/* key file                                                          */
/* ---------------------------------------------------------------- */

static int read_full(int fd, unsigned char *buf, size_t n)
{
	while (n > 0) {
		ssize_t got = read(fd, buf, n);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -1;
		if (got == 0) {
			errno = EIO;	/* the file shrank under us */
			return -1;
		}
		buf += got;
		n -= (size_t)got;
	}
	return 0;
}

static int write_full(int fd, const unsigned char *buf, size_t n)
{
	while (n > 0) {
		ssize_t put = write(fd, buf, n);

		if (put < 0 && errno == EINTR)
			continue;
		if (put < 0)
			return -1;
		buf += put;
		n -= (size_t)put;
	}
	return 0;
}

static int all_zero(const unsigned char *b, size_t n)
{
	unsigned char acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= b[i];
	return acc == 0;
}

/* Checks an open key file's metadata; logs and sets errno on refusal. */
static int key_file_acceptable(const char *path, int fd, size_t keylen)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		ch_err("fstat(key file %s): %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		ch_err("key file %s is not a regular file; refusing it", path);
		errno = EINVAL;
		return -1;
	}
	if (st.st_mode & AUTH_KEY_MODE_OTHERS) {
		ch_err("key file %s has mode %04o: group or other may read or write "
		       "the token signing key; refusing it (chmod 600 %s)",
		       path, (unsigned)(st.st_mode & 07777), path);
		errno = EPERM;
		return -1;
	}
	if ((uintmax_t)st.st_size < keylen) {
		ch_err("key file %s holds %jd bytes, fewer than the %zu a key needs; "
		       "refusing it (remove it to make a new key, which logs "
		       "everyone out)", path, (intmax_t)st.st_size, keylen);
		errno = EINVAL;
		return -1;
	}
	if ((uintmax_t)st.st_size > keylen)
		ch_warn("key file %s holds %jd bytes; using the first %zu",
			path, (intmax_t)st.st_size, keylen);
	return 0;
}

/* 0 with the key read; -1 with errno ENOENT (silent) or another (logged). */
static int key_load(const char *path, unsigned char *key, size_t keylen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	int rc = -1, err;

	if (fd < 0) {
		if (errno != ENOENT)
			ch_err("open(key file %s): %s", path, strerror(errno));
		return -1;
	}
	if (key_file_acceptable(path, fd, keylen) < 0)
		goto out;
	if (read_full(fd, key, keylen) < 0) {
		ch_err("read(key file %s): %s", path, strerror(errno));
		goto out;
	}
	if (all_zero(key, keylen)) {
		ch_err("key file %s holds only zero bytes, a constant key; refusing it",
		       path);
		errno = EINVAL;
		goto out;
	}
	rc = 0;
out:
	err = errno;
	close(fd);
	if (rc < 0) {
		explicit_bzero(key, keylen);
		errno = err;
	}
	return rc;
}

/* fsync the directory holding path, so a new name in it is durable. */
static int sync_parent_dir(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = -1;

	if (!copy) {
		ch_err_sys("strdup");
		return -1;
	}
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ch_err("open(directory of %s): %s", path, strerror(errno));
	} else {
		rc = fsync(fd);
		if (rc < 0)
			ch_err("fsync(directory of %s): %s", path, strerror(errno));
		close(fd);
	}
	free(copy);
	return rc;
}

/* Write a complete new key to a private temporary file; returns its fd. */
static int key_write_tmp(const char *tmp, const unsigned char *key, size_t keylen)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		      AUTH_KEY_FILE_MODE);

	if (fd < 0) {
		ch_err("open(%s): %s", tmp, strerror(errno));
		return -1;
	}
	/* The umask can only clear bits, but a strange one (0700) would make
	 * the key unreadable to us later: state the mode outright. */
	if (fchmod(fd, AUTH_KEY_FILE_MODE) < 0 || write_full(fd, key, keylen) < 0 ||
	    fsync(fd) < 0) {
		ch_err("writing new key file %s: %s", tmp, strerror(errno));
		close(fd);
		return -1;
	}
	if (close(fd) < 0) {
		ch_err("close(%s): %s", tmp, strerror(errno));
		return -1;
	}
	return 0;
}

/* 0 with a new key at path; -1 with errno EEXIST (silent: another process
 * made it first) or another (logged). */
static int key_create(const char *path, unsigned char *key, size_t keylen)
{
	unsigned char suffix[AUTH_TMP_SUFFIX_BYTES];
	char tmp[PATH_MAX];
	int n, rc = -1, err = 0;

	if (fill_random(suffix, sizeof(suffix)) < 0 || fill_random(key, keylen) < 0)
		goto out;
	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%02x%02x%02x%02x%02x%02x%02x%02x",
		     path, suffix[0], suffix[1], suffix[2], suffix[3], suffix[4],
		     suffix[5], suffix[6], suffix[7]);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		ch_err("key file path %s is too long", path);
		errno = ENAMETOOLONG;
		goto out;
	}
	if (key_write_tmp(tmp, key, keylen) < 0) {
		err = errno;
		unlink(tmp);
		errno = err;
		goto out;
	}
	/* link() never replaces: exactly one racing process wins. */
	if (link(tmp, path) < 0) {
		err = errno;
		if (err != EEXIST)
			ch_err("link(%s, %s): %s", tmp, path, strerror(err));
		unlink(tmp);
		errno = err;
		goto out;
	}
	if (unlink(tmp) < 0)
		ch_warn("unlink(%s): %s", tmp, strerror(errno));
	if (sync_parent_dir(path) < 0)
		goto out;
	ch_info("created a new token signing key in %s", path);
	rc = 0;
out:
	if (rc < 0) {
		err = errno;
		explicit_bzero(key, keylen);
		errno = err;
	}
	return rc;
}

int ch_key_load_or_create(const char *path, unsigned char *key, size_t keylen)
{
	/* At most: absent -> lost the creation race -> load the winner's. */
	enum { KEY_ATTEMPTS = 2 };

	if (!path || !key || !key_len_ok(keylen)) {
		ch_err("ch_key_load_or_create: key length %zu (need %d..%d)",
		       keylen, CH_KEY_MIN_BYTES, CH_KEY_MAX_BYTES);
		errno = EINVAL;
		return -1;
	}
	for (int i = 0; i < KEY_ATTEMPTS; i++) {
		if (key_load(path, key, keylen) == 0)
			return 0;
		if (errno != ENOENT)
			return -1;
		if (key_create(path, key, keylen) == 0)
			return 0;
		if (errno != EEXIST)
			return -1;
	}
	/* Absent to open(), yet link() finds a name there: a dangling
	 * symlink, or other processes creating and removing it meanwhile. */
	ch_err("key file %s exists but cannot be opened (a dangling symlink?)", path);
	errno = EAGAIN;
	return -1;
}
