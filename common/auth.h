/*
 * Accounts' building blocks: the name and password rules of PROTOCOL.md,
 * password hashes (libxcrypt), login tokens (HS256 JWTs, libjwt 1.10) and
 * the token signing key's file.
 *
 * Threading: everything here is thread-safe. Password hashing and
 * verifying are slow on purpose (yescrypt ~20-30 ms and 16 MiB at the
 * default cost) and must run off the event loop, on a pool thread with
 * that thread's struct crypt_data (worker/pool.h). Token work is cheap
 * (one HMAC) and may run on the loop. ch_key_load_or_create does blocking
 * file I/O: call it at startup.
 *
 * Errors: functions that can fail for reasons an operator must see (a bad
 * key file, a broken libcrypt setting) log them once, here; the caller
 * only acts on the return value. Token checks never log: a refused token
 * is ordinary traffic, and an attacker could flood the log.
 */
#ifndef CH_AUTH_H
#define CH_AUTH_H

#include <crypt.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- */
/* names and passwords (PROTOCOL.md, "Conventions")                  */
/* ---------------------------------------------------------------- */

#define CH_USERNAME_MAX  32	/* ^[a-z0-9_.-]{1,32}$ */
#define CH_ROOM_ID_MAX   64	/* ^[A-Za-z0-9_.:-]{1,64}$ */
/* A direct-message room is named dm:A:B, the two usernames sorted; with
 * two 32-byte names that is 68 bytes, past CH_ROOM_ID_MAX, and no client
 * may create a room whose id starts with dm: itself. */
#define CH_DM_PREFIX     "dm:"
#define CH_ROOM_NAME_MAX (3 + CH_USERNAME_MAX + 1 + CH_USERNAME_MAX)
#define CH_PASSWORD_MIN  8	/* bytes */
#define CH_PASSWORD_MAX  256	/* bytes */

/*
 * 1 when s[0..len) is a valid name, else 0. s need not be NUL-terminated
 * (a path segment works); a NUL inside the range makes it invalid. Pass
 * strlen(s) for a C string.
 */
int ch_valid_username(const char *s, size_t len);
int ch_valid_room_id(const char *s, size_t len);

/* 1 when s[0..len) is a well-formed DM room name: dm:A:B with A <= B
 * valid usernames (A == B is a user's notes to self). */
int ch_is_dm_room(const char *s, size_t len);

/* The DM room of users a and b into out (CH_ROOM_NAME_MAX + 1 bytes). */
void ch_dm_room(char *out, const char *a, const char *b);

/*
 * 1 when pw[0..len) is an acceptable password: CH_PASSWORD_MIN to
 * CH_PASSWORD_MAX bytes with no NUL inside (crypt takes C strings, so a NUL
 * would silently cut the password short). Any other byte is allowed.
 * Note: bcrypt uses only the first 72 bytes; yescrypt uses all.
 */
int ch_valid_password(const char *pw, size_t len);

/* ---------------------------------------------------------------- */
/* password hashes                                                   */
/* ---------------------------------------------------------------- */

#define CH_PASSWORD_PREFIX_YESCRYPT "$y$"
#define CH_PASSWORD_PREFIX_BCRYPT   "$2b$"
#define CH_PASSWORD_PREFIX_DEFAULT  CH_PASSWORD_PREFIX_YESCRYPT
/* Big enough for any hash crypt_rn can produce, NUL included. */
#define CH_PASSWORD_HASH_SIZE       CRYPT_OUTPUT_SIZE

/*
 * 0 when (prefix, cost) is a setting this build can hash with and the
 * configuration should accept: prefix is CH_PASSWORD_PREFIX_YESCRYPT or
 * CH_PASSWORD_PREFIX_BCRYPT (NULL means the default) and libxcrypt takes
 * the cost (0 = the library's default; yescrypt 1..11, default 5; bcrypt
 * 4..31, default 5 in libxcrypt 4.4, which is weak: configure 10 or more).
 * -1 otherwise (errno EINVAL); not logged, the config parser reports it.
 */
int ch_password_config_check(const char *prefix, unsigned long cost);

/*
 * Hash password into out (outlen >= CH_PASSWORD_HASH_SIZE is always
 * enough) with a fresh 16-byte salt from getrandom(). prefix NULL means
 * CH_PASSWORD_PREFIX_DEFAULT; cost 0 the library default. cd is the
 * calling thread's crypt_data; it is wiped before returning. 0 on success,
 * -1 with errno set and the failure logged (libcrypt refused the setting:
 * EINVAL; out too small: ERANGE).
 */
int ch_password_hash(const char *password, const char *prefix,
		     unsigned long cost, struct crypt_data *cd, char *out,
		     size_t outlen);

/*
 * 1 when password matches stored_hash, 0 when it does not, -1 when the
 * stored hash cannot be checked at all (empty, '*' or '!' locked, corrupt,
 * unsupported method; errno EINVAL, not logged: the caller knows which
 * account it was). The final comparison takes the same time wherever the
 * strings differ. cd is wiped before returning.
 *
 * For an unknown user, callers should still verify against a dummy hash
 * made at startup with the configured setting, so the answer's timing does
 * not tell which usernames exist.
 */
int ch_password_verify(const char *password, const char *stored_hash,
		       struct crypt_data *cd);

/*
 * After a successful verify: 1 when stored_hash should be replaced by a
 * new hash made with (prefix, cost), 0 when it is good as is. The rule:
 *  - crypt_checksalt() does not say CRYPT_SALT_OK (legacy methods such as
 *    DES or MD5, or anything it cannot parse) -> 1;
 *  - the stored method is not the configured one (the text up to and
 *    including the second '$' differs, so $2a$/$2y$ vs $2b$ counts) -> 1;
 *  - bcrypt: the stored cost (the two digits) is lower than the one the
 *    configured setting gets -> 1;
 *  - yescrypt: the stored parameters are those crypt_gensalt gives for a
 *    lower cost than the configured one, or for no cost 1..11 at all
 *    (hand-made parameters) -> 1;
 *  - anything else (same or higher cost) -> 0. Other methods compare the
 *    method only.
 * An invalid configured (prefix, cost) returns 0: nothing to upgrade to
 * (ch_password_config_check refuses it at load time).
 */
int ch_password_needs_upgrade(const char *stored_hash, const char *prefix,
			      unsigned long cost);

/* ---------------------------------------------------------------- */
/* tokens                                                            */
/* ---------------------------------------------------------------- */

#define CH_KEY_MIN_BYTES     32	/* HS256 wants a key of at least 256 bits */
#define CH_KEY_MAX_BYTES     1024
#define CH_TOKEN_MAX_LEN     1024	/* ours are ~220 bytes; longer is refused unread */
#define CH_TOKEN_IAT_SKEW_S  60	/* iat may be this far ahead of our clock */
#define CH_TOKEN_SIZE        (CH_TOKEN_MAX_LEN + 1)	/* a buffer for any token */

/* Why ch_token_verify refused a token. Every refusal is a 401. */
enum ch_token_status {
	CH_TOKEN_OK = 0,
	CH_TOKEN_TOO_LONG = -1,		/* over CH_TOKEN_MAX_LEN: not decoded */
	CH_TOKEN_MALFORMED = -2,	/* not three base64url segments */
	CH_TOKEN_BAD_ALG = -3,		/* unsigned (alg none) or not HS256 */
	CH_TOKEN_BAD_SIGNATURE = -4,	/* signature does not verify with our
					 * key, or libjwt could not parse the
					 * header/claims (1.10 reports both as
					 * EINVAL) */
	CH_TOKEN_EXPIRED = -5,		/* now >= exp (no leeway) */
	CH_TOKEN_NOT_YET_VALID = -6,	/* iat > now + CH_TOKEN_IAT_SKEW_S */
	CH_TOKEN_BAD_CLAIMS = -7,	/* sub/iat/exp missing, of the wrong
					 * type, or exp <= iat */
	CH_TOKEN_BAD_SUBJECT = -8,	/* sub is not a valid username */
	CH_TOKEN_ERROR = -9		/* ours, not the token's: bad key length,
					 * out of memory, user buffer too small */
};

/* A short English phrase for a status, for debug logs and metrics. */
const char *ch_token_strerror(int status);

struct ch_token_claims {
	char sub[CH_USERNAME_MAX + 1];
	int64_t iat;	/* seconds since the epoch */
	int64_t exp;	/* seconds since the epoch; login's expires_at is exp * 1000 */
};

/*
 * Make an HS256 JWT {"sub": username, "iat": iat_s, "exp": iat_s +
 * lifetime_s} into out. keylen in CH_KEY_MIN_BYTES..CH_KEY_MAX_BYTES;
 * username valid; lifetime_s > 0. 0 on success, -1 with errno EINVAL (bad
 * argument), ERANGE (out too small; CH_TOKEN_SIZE is always enough) or
 * ENOMEM.
 */
int ch_token_create(const unsigned char *key, size_t keylen,
		    const char *username, int64_t iat_s, int64_t lifetime_s,
		    char *out, size_t outlen);

/*
 * Check token against key at time now_s: an enum ch_token_status. On
 * CH_TOKEN_OK the username is copied to user_out (user_len must be at least
 * CH_USERNAME_MAX + 1 to be sure; shorter than the name -> CH_TOKEN_ERROR).
 * jwt_decode is only ever called with our real key (never key_len 0, which
 * would let alg none through), and alg, exp and iat are checked here since
 * libjwt 1.10 does not.
 */
int ch_token_verify(const unsigned char *key, size_t keylen,
		    const char *token, int64_t now_s, char *user_out,
		    size_t user_len);

/* The same, returning every claim (a WebSocket needs exp to close with
 * 1008 when the token runs out). claims is filled only on CH_TOKEN_OK. */
int ch_token_verify_claims(const unsigned char *key, size_t keylen,
			   const char *token, int64_t now_s,
			   struct ch_token_claims *claims);

/* ---------------------------------------------------------------- */
/* the signing key's file                                            */
/* ---------------------------------------------------------------- */

/*
 * Fill key[0..keylen) (CH_KEY_MIN_BYTES..CH_KEY_MAX_BYTES) from the file at
 * path, creating the file first if it does not exist.
 *
 * An existing file is refused when it is not a regular file, when group or
 * other have ANY permission on it (read would leak the key, write would let
 * someone swap in theirs: chmod 600 it), when it is shorter than keylen,
 * or when its first keylen bytes are all zero (a constant key). A longer
 * file is used (its first keylen bytes) with a warning.
 *
 * A new key comes from getrandom(). It is written to a temporary file
 * beside path (O_CREAT|O_EXCL, mode 0600), fsynced, then link()ed to path,
 * which never replaces an existing file, and the directory is fsynced. So
 * path either does not exist or holds a whole key, even when several
 * processes start at once: the losers of the race read the winner's key.
 *
 * 0 on success; -1 with errno set and the reason logged once, here.
 * Changing the key logs every user out (their tokens no longer verify).
 */
int ch_key_load_or_create(const char *path, unsigned char *key, size_t keylen);

#endif
