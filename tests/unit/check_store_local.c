/*
 * Unit tests for worker/store.c and worker/store_local.c: file ids and the
 * extension sanitiser, the kept original name (traversal attempts, control
 * characters, UTF-8), type sniffing, URL signatures, the metadata format,
 * and a whole local store cycle in a temporary directory (spool, commit,
 * read back, remove, abort).
 */
#define _GNU_SOURCE
#include "master/config.h"
#include "worker/store.h"
#include "worker/store_local.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const unsigned char key[CH_KEY_MIN_BYTES] = "0123456789abcdef0123456789abcdef";

START_TEST(valid_ids)
{
	static const char *const good[] = {
		"0123456789abcdef0123456789abcdef",
		"0123456789abcdef0123456789abcdef.png",
		"0123456789abcdef0123456789abcdef.12345678",
	};
	/* Too short, upper case, a ninth extension byte, an empty or odd
	 * extension, anything path-like. */
	static const char *const bad[] = {
		"0123456789abcdef0123456789abcde",
		"0123456789ABCDEF0123456789abcdef",
		"0123456789abcdef0123456789abcdef.123456789",
		"0123456789abcdef0123456789abcdef.",
		"0123456789abcdef0123456789abcdef.P",
		"0123456789abcdef0123456789abcdef.meta.x",
		"0123456789abcdef0123456789abcdef/..",
		"../0123456789abcdef0123456789abcdef",
		"",
		"..",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(ch_store_valid_id(good[i]) == 1, "refused %s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(ch_store_valid_id(bad[i]) == 0, "accepted %s", bad[i]);
}
END_TEST

static void id_ext(const char *name, const char *want_ext)
{
	char id[CH_STORE_ID_MAX + 1];

	ck_assert_int_eq(ch_store_make_id(name, id), 0);
	ck_assert_msg(ch_store_valid_id(id), "invalid id %s for %s", id, name);
	ck_assert_str_eq(id + 2 * CH_STORE_ID_RAND_BYTES, want_ext);
}

START_TEST(make_ids)
{
	id_ext("photo.PNG", ".png");
	id_ext("archive.tar.gz", ".gz");
	id_ext("noext", "");
	id_ext(".bashrc", "");
	id_ext("a.", "");
	id_ext("a.toolongext", "");
	id_ext("a.12345678", ".12345678");
	id_ext("x.p-p", "");
	id_ext("../../etc/passwd", "");
	id_ext("evil.<script>", "");
	id_ext("x.php/..", "");
	id_ext("", "");

	char a[CH_STORE_ID_MAX + 1], b[CH_STORE_ID_MAX + 1];
	ck_assert_int_eq(ch_store_make_id("x.txt", a), 0);
	ck_assert_int_eq(ch_store_make_id("x.txt", b), 0);
	ck_assert_str_ne(a, b);
}
END_TEST

static void clean(const char *in, const char *want)
{
	char out[CH_STORE_NAME_MAX + 1];

	ch_store_clean_name(in, out);
	ck_assert_str_eq(out, want);
}

START_TEST(clean_names)
{
	clean("report.pdf", "report.pdf");
	clean("../../etc/passwd", "passwd");
	clean("C:\\Users\\me\\win.ini", "win.ini");
	clean("/abs/", "file");
	clean("..", "file");
	clean(".", "file");
	clean("", "file");
	clean("a\r\nb\t\"c\".txt", "abc.txt");
	clean("del\x7f.txt", "del.txt");
	clean("ünïcödé 文件.txt", "ünïcödé 文件.txt");
	clean("bad\xff\xfe.txt", "bad");	/* cut at the first invalid byte's prefix */

	/* Long names are cut at CH_STORE_NAME_MAX, at a character boundary. */
	char longname[600];
	memset(longname, 'a', 254);
	strcpy(longname + 254, "\xc3\xa9\xc3\xa9tail");	/* é at bytes 254..255 */
	char out[CH_STORE_NAME_MAX + 1];
	ch_store_clean_name(longname, out);
	ck_assert_uint_eq(strlen(out), 254);
	ck_assert_int_eq(out[253], 'a');
}
END_TEST

START_TEST(sniffing)
{
	ck_assert_str_eq(ch_store_sniff((const unsigned char *)"\x89PNG\r\n\x1a\nxxxx", 12), "image/png");
	ck_assert_str_eq(ch_store_sniff((const unsigned char *)"\xff\xd8\xff\xe0", 4), "image/jpeg");
	ck_assert_str_eq(ch_store_sniff((const unsigned char *)"GIF89a..", 8), "image/gif");
	ck_assert_str_eq(ch_store_sniff((const unsigned char *)"RIFF\0\0\0\0WEBPVP8 ", 16), "image/webp");
	ck_assert_str_eq(ch_store_sniff((const unsigned char *)"%PDF-1.7", 8), "application/pdf");
	ck_assert_str_eq(ch_store_sniff((const unsigned char *)"<html><body>", 12), CH_STORE_DEFAULT_TYPE);
	ck_assert_str_eq(ch_store_sniff((const unsigned char *)"<svg xmlns=", 11), CH_STORE_DEFAULT_TYPE);
	ck_assert_str_eq(ch_store_sniff((const unsigned char *)"\x89PN", 3), CH_STORE_DEFAULT_TYPE);
	ck_assert_str_eq(ch_store_sniff((const unsigned char *)"", 0), CH_STORE_DEFAULT_TYPE);
	ck_assert_int_eq(ch_store_type_inline("image/png"), 1);
	ck_assert_int_eq(ch_store_type_inline("application/pdf"), 0);
	ck_assert_int_eq(ch_store_type_inline(CH_STORE_DEFAULT_TYPE), 0);
}
END_TEST

START_TEST(signatures)
{
	const char *id = "0123456789abcdef0123456789abcdef.png";
	char sig[CH_STORE_SHA_HEX + 1], other[CH_STORE_SHA_HEX + 1];

	ch_store_sign(key, sizeof(key), id, 2000, sig);
	ck_assert_uint_eq(strlen(sig), CH_STORE_SHA_HEX);
	ck_assert_int_eq(ch_store_check_sig(key, sizeof(key), id, 2000, sig, strlen(sig), 1999), 1);
	/* Expired, another expiry, another id, cut short, another key. */
	ck_assert_int_eq(ch_store_check_sig(key, sizeof(key), id, 2000, sig, strlen(sig), 2000), 0);
	ck_assert_int_eq(ch_store_check_sig(key, sizeof(key), id, 2001, sig, strlen(sig), 1000), 0);
	ck_assert_int_eq(ch_store_check_sig(key, sizeof(key), "0123456789abcdef0123456789abcdee.png",
					    2000, sig, strlen(sig), 1000), 0);
	ck_assert_int_eq(ch_store_check_sig(key, sizeof(key), id, 2000, sig, 63, 1000), 0);
	unsigned char k2[CH_KEY_MIN_BYTES];
	memcpy(k2, key, sizeof(k2));
	k2[0] ^= 1;
	ch_store_sign(k2, sizeof(k2), id, 2000, other);
	ck_assert_str_ne(sig, other);
	ck_assert_int_eq(ch_store_check_sig(key, sizeof(key), id, 2000, other, strlen(other), 1000), 0);
}
END_TEST

START_TEST(meta_format)
{
	struct ch_store_meta m = { .size = 12345, .created_ms = 1700000000123 }, back;
	char text[CH_STORE_META_MAX];

	strcpy(m.id, "0123456789abcdef0123456789abcdef.txt");
	strcpy(m.name, "a \\ \"quoted\" ünï.txt");
	strcpy(m.type, "text/plain");
	strcpy(m.owner, "alice");
	memset(m.sha256, 'e', CH_STORE_SHA_HEX);
	int n = ch_store_meta_encode(&m, text, sizeof(text));
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(ch_store_meta_decode(text, (size_t)n, &back), 0);
	ck_assert_str_eq(back.id, m.id);
	ck_assert_str_eq(back.name, m.name);
	ck_assert_str_eq(back.type, m.type);
	ck_assert_str_eq(back.owner, m.owner);
	ck_assert_str_eq(back.sha256, m.sha256);
	ck_assert_uint_eq(back.size, m.size);
	ck_assert_int_eq(back.created_ms, m.created_ms);
	ck_assert_int_eq(ch_store_meta_encode(&m, text, 10), -1);
	ck_assert_int_eq(ch_store_meta_decode("{}", 2, &back), -1);
	ck_assert_int_eq(ch_store_meta_decode("not json", 8, &back), -1);
	static const char bad_id[] = "{\"id\":\"../x\",\"name\":\"n\",\"type\":\"t\",\"owner\":\"o\","
				     "\"size\":1,\"sha256\":\"s\",\"created\":1}";
	ck_assert_int_eq(ch_store_meta_decode(bad_id, sizeof(bad_id) - 1, &back), -1);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* A whole local cycle                                                    */

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void sha_hex(const void *p, size_t n, char out[CH_STORE_SHA_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
	for (unsigned i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

START_TEST(local_cycle)
{
	char tmpl[] = "/tmp/check_store_XXXXXX";
	char *root = mkdtemp(tmpl);
	ck_assert_ptr_nonnull(root);
	struct ch_config *cfg = calloc(1, sizeof(*cfg));
	ck_assert_ptr_nonnull(cfg);
	ch_config_defaults(cfg);
	snprintf(cfg->data_dir, sizeof(cfg->data_dir), "%s", root);
	struct ch_store *s = ch_store_open(cfg);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(ch_store_is_s3(s), 0);
	char files[CH_PATH_MAX + 16], spool[CH_PATH_MAX + 32];
	snprintf(files, sizeof(files), "%s/files", root);
	snprintf(spool, sizeof(spool), "%s/files/tmp", root);
	ck_assert_str_eq(ch_store_local_dir(s), files);

	/* Written in uneven pieces, committed, read back whole. */
	size_t n = 300001;
	unsigned char *data = malloc(n);
	ck_assert_ptr_nonnull(data);
	for (size_t i = 0; i < n; i++)
		data[i] = (unsigned char)(i * 131 + 7);
	struct ch_store_err err;
	struct ch_store_upload *u = ch_store_begin(s, &err);
	ck_assert_ptr_nonnull(u);
	ck_assert_int_eq(count_entries(spool), 1);
	for (size_t off = 0, step = 1; off < n; off += step, step = step * 2 + 1)
		ck_assert_int_eq(ch_store_write(u, data + off, off + step > n ? n - off : step, &err), 0);
	struct ch_store_meta m = { 0 };
	ch_store_clean_name("../a \"b\".bin", m.name);
	strcpy(m.type, ch_store_sniff(data, n));
	strcpy(m.owner, "alice");
	ck_assert_int_eq(ch_store_make_id(m.name, m.id), 0);
	ck_assert_int_eq(ch_store_commit(u, &m, &err), 0);
	ck_assert_int_eq(count_entries(spool), 0);
	ck_assert_uint_eq(m.size, n);
	char want[CH_STORE_SHA_HEX + 1];
	sha_hex(data, n, want);
	ck_assert_str_eq(m.sha256, want);

	struct ch_store_meta got;
	int fd = -1;
	ck_assert_int_eq(ch_store_local_get(files, m.id, &got, &fd), 0);
	ck_assert_str_eq(got.name, "a b.bin");
	ck_assert_str_eq(got.owner, "alice");
	ck_assert_str_eq(got.sha256, want);
	ck_assert_uint_eq(got.size, n);
	unsigned char *back = malloc(n + 1);
	ck_assert_int_eq(read(fd, back, n + 1), (ssize_t)n);
	ck_assert_mem_eq(back, data, n);
	close(fd);

	/* A signed URL for it. */
	char url[CH_STORE_URL_MAX];
	ck_assert_int_eq(ch_store_url(s, m.id, 5000, key, sizeof(key), url, sizeof(url)), 0);
	ck_assert_int_eq(strncmp(url, "/files/", 7), 0);
	ck_assert_ptr_nonnull(strstr(url, "?expires=5000&sig="));

	/* Ids that are not ids, and ids of nothing. */
	ck_assert_int_eq(ch_store_local_get(files, "../jwt.key", &got, &fd), 1);
	ck_assert_int_eq(ch_store_local_get(files, "0123456789abcdef0123456789abcdef", &got, &fd), 1);

	/* Removed: gone for readers, and a second removal says so. */
	ck_assert_int_eq(ch_store_remove(s, m.id), 0);
	ck_assert_int_eq(ch_store_local_get(files, m.id, &got, &fd), 1);
	ck_assert_int_eq(ch_store_remove(s, m.id), 1);
	ck_assert_int_eq(ch_store_remove(s, "../../etc/passwd"), 1);
	ck_assert_int_eq(count_entries(files), 1);	/* only tmp/ */

	/* Aborted: the spool file goes, nothing is stored. */
	u = ch_store_begin(s, &err);
	ck_assert_ptr_nonnull(u);
	ck_assert_int_eq(ch_store_write(u, "abc", 3, &err), 0);
	ch_store_abort(u);
	ck_assert_int_eq(count_entries(spool), 0);
	ck_assert_int_eq(count_entries(files), 1);

	/* An empty file is a file. */
	u = ch_store_begin(s, &err);
	ck_assert_ptr_nonnull(u);
	memset(&m, 0, sizeof(m));
	strcpy(m.name, "empty");
	strcpy(m.type, CH_STORE_DEFAULT_TYPE);
	strcpy(m.owner, "bob");
	ck_assert_int_eq(ch_store_make_id(m.name, m.id), 0);
	ck_assert_int_eq(ch_store_commit(u, &m, &err), 0);
	ck_assert_int_eq(ch_store_local_get(files, m.id, &got, &fd), 0);
	ck_assert_uint_eq(got.size, 0);
	close(fd);
	ck_assert_int_eq(ch_store_remove(s, m.id), 0);

	ch_store_close(s);
	rmdir(spool);
	rmdir(files);
	rmdir(root);
	free(back);
	free(data);
	free(cfg);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store_local");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, valid_ids);
	tcase_add_test(tc, make_ids);
	tcase_add_test(tc, clean_names);
	tcase_add_test(tc, sniffing);
	tcase_add_test(tc, signatures);
	tcase_add_test(tc, meta_format);
	tcase_add_test(tc, local_cycle);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
