/*
 * Unit tests for common/auth: the name and password rules at their edges,
 * password hashes (yescrypt and bcrypt at low cost, failure paths, the
 * upgrade rule), tokens (valid, expired, from the future, other keys,
 * other algorithms including a hand-made alg none, damaged and crafted
 * tokens, missing claims, overlong) and the key file (created 0600,
 * reloaded, refused when short, zero, or open to group/other, and the same
 * key for processes racing to create it).
 */
#define _GNU_SOURCE
#include "common/auth.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jwt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_TIMEOUT_S 60
#define TEST_NOW 1700000000LL	/* a fixed "now" for token tests */
#define TEST_LIFETIME 3600
#define TEST_YESCRYPT_COST 1	/* the cheapest: ~2 ms */
#define TEST_BCRYPT_COST 4	/* the cheapest bcrypt allows */
#define TEST_KEY_LEN 32
#define TEST_RACERS 8
#define TEST_BIG 2048

static struct crypt_data test_cd;

static void test_key(unsigned char *key)
{
	for (int i = 0; i < TEST_KEY_LEN; i++)
		key[i] = (unsigned char)(i * 7 + 1);
}

static void fill(char *buf, size_t n, char c)
{
	memset(buf, c, n);
	buf[n] = '\0';
}

/* ---------------------------------------------------------------- */
/* names and passwords                                               */
/* ---------------------------------------------------------------- */

static int user_ok(const char *s)
{
	return ch_valid_username(s, strlen(s));
}

static int room_ok(const char *s)
{
	return ch_valid_room_id(s, strlen(s));
}

START_TEST(test_username_rules)
{
	char buf[TEST_BIG];

	ck_assert(user_ok("a"));
	ck_assert(user_ok("0"));
	ck_assert(user_ok("alice_b.c-9"));
	ck_assert(user_ok("..."));
	fill(buf, CH_USERNAME_MAX, 'z');
	ck_assert(user_ok(buf));
	fill(buf, CH_USERNAME_MAX + 1, 'z');
	ck_assert(!user_ok(buf));
	ck_assert(!user_ok(""));
	ck_assert(!user_ok("Alice"));
	ck_assert(!user_ok("a b"));
	ck_assert(!user_ok("a/b"));
	ck_assert(!user_ok("a:b"));	/* rooms allow ':', names do not */
	ck_assert(!user_ok("a@b"));
	ck_assert(!user_ok("\xc3\xa9"));	/* é */
	ck_assert(!user_ok("a\n"));
	ck_assert(!ch_valid_username("ab\0c", 4));
	ck_assert(ch_valid_username("abc/", 3));	/* length bounds the check */
	ck_assert(!ch_valid_username(NULL, 1));
}
END_TEST

START_TEST(test_room_rules)
{
	char buf[TEST_BIG];

	ck_assert(room_ok("a"));
	ck_assert(room_ok("General"));
	ck_assert(room_ok("dm:alice:bob"));
	ck_assert(room_ok("A-Z_a.z:0-9"));
	fill(buf, CH_ROOM_ID_MAX, 'R');
	ck_assert(room_ok(buf));
	fill(buf, CH_ROOM_ID_MAX + 1, 'R');
	ck_assert(!room_ok(buf));
	ck_assert(!room_ok(""));
	ck_assert(!room_ok("a b"));
	ck_assert(!room_ok("a/b"));
	ck_assert(!room_ok("../x"));
	ck_assert(!room_ok("a?b"));
	ck_assert(!room_ok("\xc3\xa4"));
	ck_assert(!ch_valid_room_id("ab\0c", 4));
	ck_assert(!ch_valid_room_id(NULL, 1));
}
END_TEST

/* Direct-message rooms: dm:A:B with A <= B, up to 68 bytes. */
START_TEST(test_dm_rooms)
{
	char room[CH_ROOM_NAME_MAX + 1], a[CH_USERNAME_MAX + 1], b[CH_USERNAME_MAX + 1];

	ch_dm_room(room, "bob", "alice");
	ck_assert_str_eq(room, "dm:alice:bob");
	ch_dm_room(room, "alice", "bob");
	ck_assert_str_eq(room, "dm:alice:bob");
	ch_dm_room(room, "al", "al");
	ck_assert_str_eq(room, "dm:al:al");
	ck_assert(ch_is_dm_room("dm:alice:bob", 12));
	ck_assert(ch_is_dm_room("dm:al:al", 8));
	ck_assert(ch_is_dm_room("dm:a:ab", 7));
	ck_assert(!ch_is_dm_room("dm:ab:a", 7));	/* not sorted */
	ck_assert(!ch_is_dm_room("dm:bob:alice", 12));
	ck_assert(!ch_is_dm_room("dm:alice", 8));
	ck_assert(!ch_is_dm_room("dm::bob", 7));
	ck_assert(!ch_is_dm_room("dm:Alice:bob", 12));	/* not a username */
	ck_assert(!ch_is_dm_room("dm:a:b:c", 8));
	ck_assert(!ch_is_dm_room("xx:a:b", 6));
	/* Two 32-byte names: 68 bytes, a valid room though over 64. */
	fill(a, CH_USERNAME_MAX, 'a');
	fill(b, CH_USERNAME_MAX, 'b');
	ch_dm_room(room, b, a);
	ck_assert_uint_eq(strlen(room), CH_ROOM_NAME_MAX);
	ck_assert(ch_is_dm_room(room, strlen(room)));
	ck_assert(room_ok(room));
	room[CH_ROOM_NAME_MAX - 1] = 'A';	/* no longer a username */
	ck_assert(!room_ok(room));
	char over[CH_ROOM_ID_MAX + 2];
	fill(over, CH_ROOM_ID_MAX + 1, 'R');
	ck_assert(!room_ok(over));
}
END_TEST

START_TEST(test_password_rules)
{
	char buf[TEST_BIG];

	fill(buf, CH_PASSWORD_MIN - 1, 'p');
	ck_assert(!ch_valid_password(buf, strlen(buf)));
	fill(buf, CH_PASSWORD_MIN, 'p');
	ck_assert(ch_valid_password(buf, strlen(buf)));
	fill(buf, CH_PASSWORD_MAX, 'p');
	ck_assert(ch_valid_password(buf, strlen(buf)));
	fill(buf, CH_PASSWORD_MAX + 1, 'p');
	ck_assert(!ch_valid_password(buf, strlen(buf)));
	ck_assert(!ch_valid_password("", 0));
	ck_assert(!ch_valid_password("passw\0rd!", 9));
	ck_assert(ch_valid_password("p\xc3\xa4ssw\xc3\xb6rd \x01\xff", 13));
	ck_assert(!ch_valid_password(NULL, 10));
}
END_TEST

/* ---------------------------------------------------------------- */
/* password hashes                                                   */
/* ---------------------------------------------------------------- */

static void hash_ok(const char *pw, const char *prefix, unsigned long cost,
		    char *out)
{
	ck_assert_int_eq(ch_password_hash(pw, prefix, cost, &test_cd, out,
					  CH_PASSWORD_HASH_SIZE), 0);
}

START_TEST(test_hash_yescrypt)
{
	char h1[CH_PASSWORD_HASH_SIZE], h2[CH_PASSWORD_HASH_SIZE];

	hash_ok("correct horse", CH_PASSWORD_PREFIX_YESCRYPT, TEST_YESCRYPT_COST, h1);
	ck_assert_msg(strncmp(h1, "$y$", 3) == 0, "%s", h1);
	ck_assert_int_eq(ch_password_verify("correct horse", h1, &test_cd), 1);
	ck_assert_int_eq(ch_password_verify("correct horsE", h1, &test_cd), 0);
	ck_assert_int_eq(ch_password_verify("correct hors", h1, &test_cd), 0);
	ck_assert_int_eq(ch_password_verify("correct horse ", h1, &test_cd), 0);
	ck_assert_int_eq(ch_password_verify("", h1, &test_cd), 0);
	/* a fresh salt each time */
	hash_ok("correct horse", CH_PASSWORD_PREFIX_YESCRYPT, TEST_YESCRYPT_COST, h2);
	ck_assert_str_ne(h1, h2);
	ck_assert_int_eq(ch_password_verify("correct horse", h2, &test_cd), 1);
	/* the whole hash must match: a damaged stored hash does not */
	h2[strlen(h2) - 1] ^= 1;
	ck_assert_int_ne(ch_password_verify("correct horse", h2, &test_cd), 1);
}
END_TEST

START_TEST(test_hash_default_setting)
{
	char h[CH_PASSWORD_HASH_SIZE];

	/* NULL prefix and cost 0: libxcrypt's default yescrypt ($y$j9T$) */
	hash_ok("default cost pw", NULL, 0, h);
	ck_assert_msg(strncmp(h, "$y$j9T$", 7) == 0, "%s", h);
	ck_assert_int_eq(ch_password_verify("default cost pw", h, &test_cd), 1);
	ck_assert_int_eq(ch_password_needs_upgrade(h, NULL, 0), 0);
}
END_TEST

START_TEST(test_hash_bcrypt)
{
	char h[CH_PASSWORD_HASH_SIZE];
	char long_pw[100];

	hash_ok("hunter2hunter2", CH_PASSWORD_PREFIX_BCRYPT, TEST_BCRYPT_COST, h);
	ck_assert_msg(strncmp(h, "$2b$04$", 7) == 0, "%s", h);
	ck_assert_int_eq(ch_password_verify("hunter2hunter2", h, &test_cd), 1);
	ck_assert_int_eq(ch_password_verify("hunter2hunter3", h, &test_cd), 0);
	/* bcrypt's documented limit: bytes past 72 do not count */
	fill(long_pw, 80, 'x');
	hash_ok(long_pw, CH_PASSWORD_PREFIX_BCRYPT, TEST_BCRYPT_COST, h);
	long_pw[79] = 'y';
	ck_assert_int_eq(ch_password_verify(long_pw, h, &test_cd), 1);
	/* yescrypt counts them */
	fill(long_pw, 80, 'x');
	hash_ok(long_pw, CH_PASSWORD_PREFIX_YESCRYPT, TEST_YESCRYPT_COST, h);
	long_pw[79] = 'y';
	ck_assert_int_eq(ch_password_verify(long_pw, h, &test_cd), 0);
}
END_TEST

START_TEST(test_hash_failures)
{
	char h[CH_PASSWORD_HASH_SIZE];
	char tiny[8];

	/* libcrypt refuses these settings; its '*' output must not leak out */
	memset(h, 'Q', sizeof(h));
	errno = 0;
	ck_assert_int_eq(ch_password_hash("password1", "$2b$", 99, &test_cd, h,
					  sizeof(h)), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(ch_password_hash("password1", "$nope$", 0, &test_cd, h,
					  sizeof(h)), -1);
	ck_assert_int_eq(ch_password_hash("password1", "$y$", 12, &test_cd, h,
					  sizeof(h)), -1);
	errno = 0;
	ck_assert_int_eq(ch_password_hash("password1", "$y$", TEST_YESCRYPT_COST,
					  &test_cd, tiny, sizeof(tiny)), -1);
	ck_assert_int_eq(errno, ERANGE);
	ck_assert_int_eq(ch_password_hash(NULL, NULL, 0, &test_cd, h, sizeof(h)), -1);

	/* stored hashes that cannot be checked */
	ck_assert_int_eq(ch_password_verify("password1", "", &test_cd), -1);
	ck_assert_int_eq(ch_password_verify("password1", "*0", &test_cd), -1);
	ck_assert_int_eq(ch_password_verify("password1", "*", &test_cd), -1);
	ck_assert_int_eq(ch_password_verify("password1", "!$y$j75$abc$def", &test_cd), -1);
	ck_assert_int_eq(ch_password_verify("password1", "$y$zzz$abc", &test_cd), -1);
	ck_assert_int_eq(ch_password_verify("password1", "$nope$xyz", &test_cd), -1);
	ck_assert_int_eq(ch_password_verify(NULL, "$y$j75$abc", &test_cd), -1);
}
END_TEST

START_TEST(test_hash_wipes_crypt_data)
{
	char h[CH_PASSWORD_HASH_SIZE];
	const unsigned char *p = (const unsigned char *)&test_cd;
	unsigned acc = 0;

	memset(&test_cd, 0xAA, sizeof(test_cd));
	hash_ok("wipe me please", CH_PASSWORD_PREFIX_YESCRYPT, TEST_YESCRYPT_COST, h);
	for (size_t i = 0; i < sizeof(test_cd); i++)
		acc |= p[i];
	ck_assert_uint_eq(acc, 0);
	memset(&test_cd, 0xAA, sizeof(test_cd));
	ck_assert_int_eq(ch_password_verify("wipe me please", h, &test_cd), 1);
	for (size_t i = 0; i < sizeof(test_cd); i++)
		acc |= p[i];
	ck_assert_uint_eq(acc, 0);
}
END_TEST

START_TEST(test_config_check)
{
	ck_assert_int_eq(ch_password_config_check(NULL, 0), 0);
	ck_assert_int_eq(ch_password_config_check("$y$", 0), 0);
	ck_assert_int_eq(ch_password_config_check("$y$", 1), 0);
	ck_assert_int_eq(ch_password_config_check("$y$", 11), 0);
	ck_assert_int_eq(ch_password_config_check("$y$", 12), -1);
	ck_assert_int_eq(ch_password_config_check("$2b$", 10), 0);
	ck_assert_int_eq(ch_password_config_check("$2b$", 3), -1);
	ck_assert_int_eq(ch_password_config_check("$2b$", 32), -1);
	ck_assert_int_eq(ch_password_config_check("$1$", 0), -1);	/* md5crypt */
	ck_assert_int_eq(ch_password_config_check("$6$", 0), -1);	/* allowed by libcrypt, not by us */
	ck_assert_int_eq(ch_password_config_check("", 0), -1);	/* DES */
}
END_TEST

/* yescrypt with N and r that crypt_gensalt gives for no cost 1..11 */
#define YESCRYPT_HANDMADE "$y$j55$/6k.2IU/5UE08g.1Bsk1E."

/* A stored-looking setting for (prefix, cost) without paying for a hash. */
static void setting_for(const char *prefix, unsigned long cost, char *out)
{
	static const char rb[16] = "0123456789abcdef";

	ck_assert_ptr_nonnull(crypt_gensalt_rn(prefix, cost, rb, sizeof(rb), out,
					       CRYPT_GENSALT_OUTPUT_SIZE));
	ck_assert_int_ne(out[0], '*');
}

START_TEST(test_needs_upgrade)
{
	char yes1[CH_PASSWORD_HASH_SIZE], bc4[CH_PASSWORD_HASH_SIZE];
	char s[CH_PASSWORD_HASH_SIZE];

	hash_ok("upgrade me", CH_PASSWORD_PREFIX_YESCRYPT, TEST_YESCRYPT_COST, yes1);
	hash_ok("upgrade me", CH_PASSWORD_PREFIX_BCRYPT, TEST_BCRYPT_COST, bc4);

	/* another method than the configured one */
	ck_assert_int_eq(ch_password_needs_upgrade(bc4, "$y$", 0), 1);
	ck_assert_int_eq(ch_password_needs_upgrade(yes1, "$2b$", TEST_BCRYPT_COST), 1);

	/* yescrypt: lower cost -> 1, same -> 0, higher -> 0 */
	ck_assert_int_eq(ch_password_needs_upgrade(yes1, "$y$", 0), 1);	/* 1 < 5 */
	ck_assert_int_eq(ch_password_needs_upgrade(yes1, "$y$", 5), 1);
	ck_assert_int_eq(ch_password_needs_upgrade(yes1, "$y$", 2), 1);
	ck_assert_int_eq(ch_password_needs_upgrade(yes1, "$y$", 1), 0);
	setting_for("$y$", 5, s);
	ck_assert_int_eq(ch_password_needs_upgrade(s, "$y$", 0), 0);
	ck_assert_int_eq(ch_password_needs_upgrade(s, "$y$", 5), 0);
	ck_assert_int_eq(ch_password_needs_upgrade(s, "$y$", 6), 1);
	setting_for("$y$", 8, s);
	ck_assert_int_eq(ch_password_needs_upgrade(s, "$y$", 5), 0);
	ck_assert_int_eq(ch_password_needs_upgrade(s, "$y$", 11), 1);
	/* hand-made parameters no cost gives (N below cost 1's): valid to
	 * crypt_checksalt, verifiable, and upgraded whatever is configured */
	ck_assert_int_eq(crypt_checksalt(YESCRYPT_HANDMADE), CRYPT_SALT_OK);
	ck_assert_int_eq(ch_password_needs_upgrade(YESCRYPT_HANDMADE, "$y$", 1), 1);
	ck_assert_ptr_nonnull(crypt_rn("upgrade me", YESCRYPT_HANDMADE, &test_cd,
				       sizeof(test_cd)));
	strcpy(s, test_cd.output);
	ck_assert_int_eq(ch_password_verify("upgrade me", s, &test_cd), 1);
	ck_assert_int_eq(ch_password_needs_upgrade(s, "$y$", 1), 1);

	/* bcrypt: the same */
	ck_assert_int_eq(ch_password_needs_upgrade(bc4, "$2b$", 5), 1);
	ck_assert_int_eq(ch_password_needs_upgrade(bc4, "$2b$", 0), 1);	/* default 5 */
	ck_assert_int_eq(ch_password_needs_upgrade(bc4, "$2b$", 4), 0);
	setting_for("$2b$", 12, s);
	ck_assert_int_eq(ch_password_needs_upgrade(s, "$2b$", 10), 0);
	ck_assert_int_eq(ch_password_needs_upgrade(s, "$2b$", 12), 0);
	ck_assert_int_eq(ch_password_needs_upgrade(s, "$2b$", 13), 1);
	/* another bcrypt variant is another method */
	setting_for("$2y$", 12, s);
	ck_assert_int_eq(ch_password_needs_upgrade(s, "$2b$", 10), 1);

	/* legacy methods crypt_checksalt flags, and junk */
	setting_for("$1$", 0, s);	/* md5crypt */
	ck_assert_int_eq(ch_password_needs_upgrade(s, "$y$", 0), 1);
	ck_assert_int_eq(ch_password_needs_upgrade("abJnggxhB/yWI", "$y$", 0), 1); /* DES */
	ck_assert_int_eq(ch_password_needs_upgrade("", "$y$", 0), 1);
	ck_assert_int_eq(ch_password_needs_upgrade("*0", "$y$", 0), 1);
	ck_assert_int_eq(ch_password_needs_upgrade(NULL, "$y$", 0), 1);

	/* nothing valid to upgrade to */
	ck_assert_int_eq(ch_password_needs_upgrade(yes1, "$y$", 12), 0);
	ck_assert_int_eq(ch_password_needs_upgrade(yes1, "$nope$", 0), 0);
}
END_TEST

/* ---------------------------------------------------------------- */
/* tokens                                                            */
/* ---------------------------------------------------------------- */

static void b64url(const char *in, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t n = strlen(in), o = 0;
	const unsigned char *p = (const unsigned char *)in;

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16;

		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = tab[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = tab[v & 63];
	}
	out[o] = '\0';
}

static int verify(const char *token, char *user)
{
	unsigned char key[TEST_KEY_LEN];

	test_key(key);
	return ch_token_verify(key, sizeof(key), token, TEST_NOW, user,
			       CH_USERNAME_MAX + 1);
}

/* Sign claims (a JSON object) with libjwt, with our key unless key given. */
static void craft(jwt_alg_t alg, const char *claims_json,
		  const unsigned char *key, size_t keylen, char *out)
{
	unsigned char our[TEST_KEY_LEN];
	jwt_t *jwt;
	char *s;

	test_key(our);
	ck_assert_int_eq(jwt_new(&jwt), 0);
	ck_assert_int_eq(jwt_add_grants_json(jwt, claims_json), 0);
	ck_assert_int_eq(jwt_set_alg(jwt, alg, key ? key : our,
				     key ? (int)keylen : (int)sizeof(our)), 0);
	s = jwt_encode_str(jwt);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_lt(strlen(s), TEST_BIG);
	strcpy(out, s);
	free(s);
	jwt_free(jwt);
}

static void make_token(const char *user, long long iat, char *out)
{
	unsigned char key[TEST_KEY_LEN];

	test_key(key);
	ck_assert_int_eq(ch_token_create(key, sizeof(key), user, iat, TEST_LIFETIME,
					 out, CH_TOKEN_SIZE), 0);
}

START_TEST(test_token_valid)
{
	unsigned char key[TEST_KEY_LEN];
	char tok[CH_TOKEN_SIZE], user[CH_USERNAME_MAX + 1];
	struct ch_token_claims c;
	char longest[CH_USERNAME_MAX + 1];

	make_token("alice", TEST_NOW, tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_OK);
	ck_assert_str_eq(user, "alice");
	test_key(key);
	ck_assert_int_eq(ch_token_verify_claims(key, sizeof(key), tok, TEST_NOW + 10, &c),
			 CH_TOKEN_OK);
	ck_assert_str_eq(c.sub, "alice");
	ck_assert_int_eq(c.iat, TEST_NOW);
	ck_assert_int_eq(c.exp, TEST_NOW + TEST_LIFETIME);

	/* the longest valid name fits a CH_USERNAME_MAX + 1 buffer */
	fill(longest, CH_USERNAME_MAX, 'n');
	make_token(longest, TEST_NOW, tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_OK);
	ck_assert_str_eq(user, longest);
	/* a buffer too small is our error, not the token's */
	ck_assert_int_eq(ch_token_verify(key, sizeof(key), tok, TEST_NOW, user, 5),
			 CH_TOKEN_ERROR);
	/* a key too short for HS256 is never used, and 0 never reaches libjwt */
	ck_assert_int_eq(ch_token_verify(key, 0, tok, TEST_NOW, user, sizeof(user)),
			 CH_TOKEN_ERROR);
	ck_assert_int_eq(ch_token_verify(key, CH_KEY_MIN_BYTES - 1, tok, TEST_NOW,
					 user, sizeof(user)), CH_TOKEN_ERROR);
}
END_TEST

START_TEST(test_token_create_refuses)
{
	unsigned char key[TEST_KEY_LEN];
	char tok[CH_TOKEN_SIZE];
	char small[16];

	test_key(key);
	errno = 0;
	ck_assert_int_eq(ch_token_create(key, sizeof(key), "Bad Name", TEST_NOW, 60,
					 tok, sizeof(tok)), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(ch_token_create(key, sizeof(key), "", TEST_NOW, 60, tok,
					 sizeof(tok)), -1);
	ck_assert_int_eq(ch_token_create(key, sizeof(key), "bob", TEST_NOW, 0, tok,
					 sizeof(tok)), -1);
	ck_assert_int_eq(ch_token_create(key, CH_KEY_MIN_BYTES - 1, "bob", TEST_NOW,
					 60, tok, sizeof(tok)), -1);
	ck_assert_int_eq(ch_token_create(key, sizeof(key), "bob", LLONG_MAX - 10, 60,
					 tok, sizeof(tok)), -1);
	errno = 0;
	ck_assert_int_eq(ch_token_create(key, sizeof(key), "bob", TEST_NOW, 60,
					 small, sizeof(small)), -1);
	ck_assert_int_eq(errno, ERANGE);
}
END_TEST

START_TEST(test_token_times)
{
	char tok[CH_TOKEN_SIZE], user[CH_USERNAME_MAX + 1];
	unsigned char key[TEST_KEY_LEN];

	test_key(key);
	make_token("bob", TEST_NOW - TEST_LIFETIME, tok);	/* exp == now */
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_EXPIRED);
	make_token("bob", TEST_NOW - TEST_LIFETIME + 1, tok);	/* 1 s left */
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_OK);
	make_token("bob", TEST_NOW - 10 * TEST_LIFETIME, tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_EXPIRED);

	make_token("bob", TEST_NOW + CH_TOKEN_IAT_SKEW_S, tok);	/* within skew */
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_OK);
	make_token("bob", TEST_NOW + CH_TOKEN_IAT_SKEW_S + 1, tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_NOT_YET_VALID);
	ck_assert_int_eq(ch_token_verify(key, sizeof(key), tok,
					 TEST_NOW + 1, user, sizeof(user)), CH_TOKEN_OK);
}
END_TEST

START_TEST(test_token_wrong_key_and_alg)
{
	unsigned char other[TEST_KEY_LEN];
	char tok[TEST_BIG], user[CH_USERNAME_MAX + 1];
	char payload[256], json[256];
	char claims[] = "{\"sub\":\"alice\",\"iat\":1700000000,\"exp\":1700003600}";

	/* the same claims, HS256 under our key: accepted (the control) */
	craft(JWT_ALG_HS256, claims, NULL, 0, tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_OK);

	/* another key */
	memset(other, 0x5a, sizeof(other));
	craft(JWT_ALG_HS256, claims, other, sizeof(other), tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_BAD_SIGNATURE);
	ch_token_create(other, sizeof(other), "alice", TEST_NOW, 60, tok, CH_TOKEN_SIZE);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_BAD_SIGNATURE);

	/* another HMAC algorithm with OUR key: the signature verifies, the
	 * algorithm does not */
	craft(JWT_ALG_HS512, claims, NULL, 0, tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_BAD_ALG);
	craft(JWT_ALG_HS384, claims, NULL, 0, tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_BAD_ALG);

	/* alg none, by hand: {"alg":"none"} . claims . (empty signature) */
	b64url(claims, payload);
	snprintf(tok, sizeof(tok), "eyJhbGciOiJub25lIn0.%s.", payload);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_BAD_ALG);
	b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}", json);
	snprintf(tok, sizeof(tok), "%s.%s.", json, payload);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_BAD_ALG);
	/* alg none with a signature glued on */
	snprintf(tok, sizeof(tok), "eyJhbGciOiJub25lIn0.%s.AAAA", payload);
	ck_assert_int_ne(verify(tok, user), CH_TOKEN_OK);
	/* HS256 header, no signature */
	b64url("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", json);
	snprintf(tok, sizeof(tok), "%s.%s.", json, payload);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_BAD_ALG);
}
END_TEST

START_TEST(test_token_damaged)
{
	char tok[CH_TOKEN_SIZE], bad[TEST_BIG], user[CH_USERNAME_MAX + 1];
	char payload[256];
	const char *dot1, *dot2;

	make_token("alice", TEST_NOW, tok);
	dot1 = strchr(tok, '.');
	dot2 = strchr(dot1 + 1, '.');

	/* truncated: in the signature, at the second dot, after it */
	strcpy(bad, tok);
	bad[strlen(bad) - 1] = '\0';
	ck_assert_int_eq(verify(bad, user), CH_TOKEN_BAD_SIGNATURE);
	snprintf(bad, sizeof(bad), "%.*s", (int)(dot2 - tok), tok);
	ck_assert_int_eq(verify(bad, user), CH_TOKEN_MALFORMED);
	snprintf(bad, sizeof(bad), "%.*s", (int)(dot2 - tok) + 1, tok);
	ck_assert_int_eq(verify(bad, user), CH_TOKEN_BAD_ALG);
	snprintf(bad, sizeof(bad), "%.*s", (int)(dot1 - tok), tok);
	ck_assert_int_eq(verify(bad, user), CH_TOKEN_MALFORMED);

	/* garbage */
	ck_assert_int_eq(verify("", user), CH_TOKEN_MALFORMED);
	ck_assert_int_eq(verify("garbage", user), CH_TOKEN_MALFORMED);
	ck_assert_int_eq(verify("..", user), CH_TOKEN_MALFORMED);
	ck_assert_int_eq(verify("a b.c.d", user), CH_TOKEN_MALFORMED);
	ck_assert_int_eq(verify("a.b.c.d", user), CH_TOKEN_MALFORMED);
	ck_assert_int_eq(verify("abc.def.ghi", user), CH_TOKEN_BAD_SIGNATURE);
	ck_assert_int_eq(verify(NULL, user), CH_TOKEN_MALFORMED);
	snprintf(bad, sizeof(bad), "%s ", tok);	/* trailing space */
	ck_assert_int_eq(verify(bad, user), CH_TOKEN_MALFORMED);
	snprintf(bad, sizeof(bad), "%s=", tok);	/* padding is not base64url */
	ck_assert_int_eq(verify(bad, user), CH_TOKEN_MALFORMED);

	/* tampered payload: a flipped character, then a whole new payload
	 * with the original header and signature */
	strcpy(bad, tok);
	bad[dot1 - tok + 3] = bad[dot1 - tok + 3] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(verify(bad, user), CH_TOKEN_BAD_SIGNATURE);
	b64url("{\"exp\":1700003600,\"iat\":1700000000,\"sub\":\"mallory\"}", payload);
	snprintf(bad, sizeof(bad), "%.*s%s%s", (int)(dot1 - tok) + 1, tok, payload, dot2);
	ck_assert_int_eq(verify(bad, user), CH_TOKEN_BAD_SIGNATURE);
	/* tampered signature */
	strcpy(bad, tok);
	bad[dot2 - tok + 2] = bad[dot2 - tok + 2] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(verify(bad, user), CH_TOKEN_BAD_SIGNATURE);
}
END_TEST

START_TEST(test_token_claims)
{
	char tok[TEST_BIG], user[CH_USERNAME_MAX + 1];

	craft(JWT_ALG_HS256, "{\"iat\":1700000000,\"exp\":1700003600}", NULL, 0, tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_BAD_CLAIMS);	/* no sub */
	craft(JWT_ALG_HS256, "{\"sub\":\"alice\",\"iat\":1700000000}", NULL, 0, tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_BAD_CLAIMS);	/* no exp */
	craft(JWT_ALG_HS256, "{\"sub\":\"alice\",\"exp\":1700003600}", NULL, 0, tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_BAD_CLAIMS);	/* no iat */
	craft(JWT_ALG_HS256, "{\"sub\":\"alice\",\"iat\":1700000000,\"exp\":\"1700003600\"}",
	      NULL, 0, tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_BAD_CLAIMS);	/* string exp */
	craft(JWT_ALG_HS256, "{\"sub\":\"alice\",\"iat\":1700000000,\"exp\":1.7e9}",
	      NULL, 0, tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_BAD_CLAIMS);	/* float exp */
	craft(JWT_ALG_HS256, "{\"sub\":\"alice\",\"iat\":-5,\"exp\":1700003600}",
	      NULL, 0, tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_BAD_CLAIMS);	/* negative */
	craft(JWT_ALG_HS256, "{\"sub\":\"alice\",\"iat\":1700003600,\"exp\":1700003600}",
	      NULL, 0, tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_BAD_CLAIMS);	/* exp <= iat */
	craft(JWT_ALG_HS256, "{\"sub\":42,\"iat\":1700000000,\"exp\":1700003600}",
	      NULL, 0, tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_BAD_CLAIMS);	/* sub not a string */
	craft(JWT_ALG_HS256, "{\"sub\":\"Mallory!\",\"iat\":1700000000,\"exp\":1700003600}",
	      NULL, 0, tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_BAD_SUBJECT);
	craft(JWT_ALG_HS256, "{\"sub\":\"\",\"iat\":1700000000,\"exp\":1700003600}",
	      NULL, 0, tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_BAD_SUBJECT);
	craft(JWT_ALG_HS256,
	      "{\"sub\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"iat\":1700000000,\"exp\":1700003600}",
	      NULL, 0, tok);	/* 33 characters */
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_BAD_SUBJECT);
	/* extra claims are fine */
	craft(JWT_ALG_HS256,
	      "{\"sub\":\"alice\",\"iat\":1700000000,\"exp\":1700003600,\"x\":[1]}",
	      NULL, 0, tok);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_OK);
}
END_TEST

START_TEST(test_token_overlong)
{
	char tok[TEST_BIG * 2], user[CH_USERNAME_MAX + 1];
	char claims[TEST_BIG];
	char pad[CH_TOKEN_MAX_LEN];

	/* correctly signed, but too long: refused before decoding */
	fill(pad, CH_TOKEN_MAX_LEN - 1, 'p');
	snprintf(claims, sizeof(claims),
		 "{\"sub\":\"alice\",\"iat\":1700000000,\"exp\":1700003600,\"pad\":\"%s\"}",
		 pad);
	craft(JWT_ALG_HS256, claims, NULL, 0, tok);
	ck_assert_uint_gt(strlen(tok), CH_TOKEN_MAX_LEN);
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_TOO_LONG);
	fill(tok, CH_TOKEN_MAX_LEN + 1, 'A');
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_TOO_LONG);
	fill(tok, CH_TOKEN_MAX_LEN, 'A');	/* at the limit: read, and malformed */
	ck_assert_int_eq(verify(tok, user), CH_TOKEN_MALFORMED);
}
END_TEST

START_TEST(test_token_strerror)
{
	const char *seen[16];
	int n = 0;

	for (int st = CH_TOKEN_OK; st >= CH_TOKEN_ERROR; st--) {
		const char *s = ch_token_strerror(st);

		ck_assert_ptr_nonnull(s);
		for (int i = 0; i < n; i++)
			ck_assert_str_ne(seen[i], s);
		seen[n++] = s;
	}
	ck_assert_str_eq(ch_token_strerror(CH_TOKEN_ERROR - 1), "unknown token status");
	ck_assert_str_eq(ch_token_strerror(1), "unknown token status");
}
END_TEST

/* ---------------------------------------------------------------- */
/* key file                                                          */
/* ---------------------------------------------------------------- */

#define TEST_DIR_MAX 64
static char test_dir[TEST_DIR_MAX];

static void dir_setup(void)
{
	strcpy(test_dir, "/tmp/check_auth.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
}

static void dir_teardown(void)
{
	DIR *d = opendir(test_dir);
	struct dirent *e;
	char p[PATH_MAX + 256];

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", test_dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(test_dir);
}

static void key_path(char *out, const char *name)
{
	snprintf(out, PATH_MAX, "%s/%s", test_dir, name);
}

static int count_entries(void)
{
	DIR *d = opendir(test_dir);
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void write_file(const char *path, const unsigned char *b, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, b, n), (ssize_t)n);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

static int is_zero(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

START_TEST(test_key_create_and_reload)
{
	char path[PATH_MAX];
	unsigned char k1[TEST_KEY_LEN], k2[TEST_KEY_LEN], k3[TEST_KEY_LEN];
	struct stat st;

	umask(022);
	key_path(path, "jwt.key");
	ck_assert_int_eq(ch_key_load_or_create(path, k1, sizeof(k1)), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(st.st_size, TEST_KEY_LEN);
	ck_assert(!is_zero(k1, sizeof(k1)));
	ck_assert_int_eq(count_entries(), 1);	/* no temporary file left */

	ck_assert_int_eq(ch_key_load_or_create(path, k2, sizeof(k2)), 0);
	ck_assert_mem_eq(k1, k2, sizeof(k1));

	/* another file gets another key */
	key_path(path, "other.key");
	ck_assert_int_eq(ch_key_load_or_create(path, k3, sizeof(k3)), 0);
	ck_assert(memcmp(k1, k3, sizeof(k1)) != 0);

	/* a hostile umask cannot make the file unreadable to us or open to others */
	key_path(path, "umask.key");
	umask(0777);
	ck_assert_int_eq(ch_key_load_or_create(path, k3, sizeof(k3)), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	umask(0);
	key_path(path, "umask0.key");
	ck_assert_int_eq(ch_key_load_or_create(path, k3, sizeof(k3)), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	umask(022);
}
END_TEST

START_TEST(test_key_refused)
{
	char path[PATH_MAX];
	unsigned char k[TEST_KEY_LEN], good[TEST_KEY_LEN + 8];

	memset(good, 0x42, sizeof(good));
	key_path(path, "k");

	/* short */
	write_file(path, good, TEST_KEY_LEN - 1, 0600);
	memset(k, 0x77, sizeof(k));
	errno = 0;
	ck_assert_int_eq(ch_key_load_or_create(path, k, sizeof(k)), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert(is_zero(k, sizeof(k)));	/* nothing half-read left behind */

	/* open to group or other: read or write */
	write_file(path, good, TEST_KEY_LEN, 0644);
	errno = 0;
	ck_assert_int_eq(ch_key_load_or_create(path, k, sizeof(k)), -1);
	ck_assert_int_eq(errno, EPERM);
	write_file(path, good, TEST_KEY_LEN, 0640);
	ck_assert_int_eq(ch_key_load_or_create(path, k, sizeof(k)), -1);
	write_file(path, good, TEST_KEY_LEN, 0604);
	ck_assert_int_eq(ch_key_load_or_create(path, k, sizeof(k)), -1);
	write_file(path, good, TEST_KEY_LEN, 0602);
	ck_assert_int_eq(ch_key_load_or_create(path, k, sizeof(k)), -1);
	write_file(path, good, TEST_KEY_LEN, 0620);
	ck_assert_int_eq(ch_key_load_or_create(path, k, sizeof(k)), -1);

	/* the same bytes at 0600 and 0400 are fine; longer is fine too */
	write_file(path, good, TEST_KEY_LEN, 0600);
	ck_assert_int_eq(ch_key_load_or_create(path, k, sizeof(k)), 0);
	ck_assert_mem_eq(k, good, sizeof(k));
	write_file(path, good, TEST_KEY_LEN, 0400);
	ck_assert_int_eq(ch_key_load_or_create(path, k, sizeof(k)), 0);
	unlink(path);
	write_file(path, good, sizeof(good), 0600);
	ck_assert_int_eq(ch_key_load_or_create(path, k, sizeof(k)), 0);
	ck_assert_mem_eq(k, good, sizeof(k));

	/* a constant (all-zero) key */
	memset(good, 0, sizeof(good));
	write_file(path, good, TEST_KEY_LEN, 0600);
	ck_assert_int_eq(ch_key_load_or_create(path, k, sizeof(k)), -1);

	/* not a regular file */
	key_path(path, "dir");
	ck_assert_int_eq(mkdir(path, 0700), 0);
	ck_assert_int_eq(ch_key_load_or_create(path, k, sizeof(k)), -1);
	rmdir(path);

	/* a key too short for HS256 is never made */
	key_path(path, "short.key");
	errno = 0;
	ck_assert_int_eq(ch_key_load_or_create(path, k, CH_KEY_MIN_BYTES - 1), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(access(path, F_OK), -1);

	/* no such directory */
	key_path(path, "missing/dir/k");
	ck_assert_int_eq(ch_key_load_or_create(path, k, sizeof(k)), -1);
}
END_TEST

/* Processes starting at once must all end up with the one key. */
START_TEST(test_key_create_race)
{
	char path[PATH_MAX];
	unsigned char keys[TEST_RACERS][TEST_KEY_LEN];
	int fds[TEST_RACERS][2];
	pid_t pids[TEST_RACERS];

	key_path(path, "race.key");
	for (int i = 0; i < TEST_RACERS; i++) {
		ck_assert_int_eq(pipe(fds[i]), 0);
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			unsigned char k[TEST_KEY_LEN];
			int ok = ch_key_load_or_create(path, k, sizeof(k)) == 0;

			if (ok && write(fds[i][1], k, sizeof(k)) == (ssize_t)sizeof(k))
				_exit(0);
			_exit(1);
		}
		close(fds[i][1]);
	}
	for (int i = 0; i < TEST_RACERS; i++) {
		int status;

		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		ck_assert_int_eq(read(fds[i][0], keys[i], TEST_KEY_LEN), TEST_KEY_LEN);
		close(fds[i][0]);
		ck_assert_mem_eq(keys[i], keys[0], TEST_KEY_LEN);
	}
	ck_assert_int_eq(count_entries(), 1);
}
END_TEST

static Suite *auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *names = tcase_create("names");
	TCase *hashes = tcase_create("hashes");
	TCase *tokens = tcase_create("tokens");
	TCase *keys = tcase_create("keyfile");

	tcase_add_test(names, test_username_rules);
	tcase_add_test(names, test_room_rules);
	tcase_add_test(names, test_dm_rooms);
	tcase_add_test(names, test_password_rules);
	suite_add_tcase(s, names);

	tcase_set_timeout(hashes, TEST_TIMEOUT_S);
	tcase_add_test(hashes, test_hash_yescrypt);
	tcase_add_test(hashes, test_hash_default_setting);
	tcase_add_test(hashes, test_hash_bcrypt);
	tcase_add_test(hashes, test_hash_failures);
	tcase_add_test(hashes, test_hash_wipes_crypt_data);
	tcase_add_test(hashes, test_config_check);
	tcase_add_test(hashes, test_needs_upgrade);
	suite_add_tcase(s, hashes);

	tcase_add_test(tokens, test_token_valid);
	tcase_add_test(tokens, test_token_create_refuses);
	tcase_add_test(tokens, test_token_times);
	tcase_add_test(tokens, test_token_wrong_key_and_alg);
	tcase_add_test(tokens, test_token_damaged);
	tcase_add_test(tokens, test_token_claims);
	tcase_add_test(tokens, test_token_overlong);
	tcase_add_test(tokens, test_token_strerror);
	suite_add_tcase(s, tokens);

	tcase_add_checked_fixture(keys, dir_setup, dir_teardown);
	tcase_add_test(keys, test_key_create_and_reload);
	tcase_add_test(keys, test_key_refused);
	tcase_add_test(keys, test_key_create_race);
	suite_add_tcase(s, keys);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(auth_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
