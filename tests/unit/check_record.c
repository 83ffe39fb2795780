/*
 * Journal records: encode/decode round trip of every type with its payload,
 * every single-bit flip refused, each refusal reason, truncation at every
 * length, the size limits, and the payload codec's bounds.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "journal/record.h"

#define BUF_SIZE 4096
#define CANARY 0xA5

static uint8_t buf[BUF_SIZE];
static uint8_t payload[BUF_SIZE];

static const uint16_t all_types[] = {
	CH_REC_USER_CREATED, CH_REC_PASSWORD_CHANGED, CH_REC_ROOM_CREATED,
	CH_REC_PARTICIPANTS_CHANGED, CH_REC_MESSAGE, CH_REC_FILE_STORED,
	CH_REC_FILE_REMOVED, CH_REC_EPOCH_BUMPED,
};
#define N_TYPES (sizeof(all_types) / sizeof(all_types[0]))

/* A payload in the layout record.h documents for each type. */
static size_t build_payload(uint16_t type, uint8_t *out, size_t cap)
{
	struct ch_payload_writer w;
	size_t len = 0;

	ch_payload_writer_init(&w, out, cap);
	switch (type) {
	case CH_REC_USER_CREATED:
		ch_payload_put_str(&w, "alice");
		ch_payload_put_str(&w, "$y$j9T$salt$hash");
		break;
	case CH_REC_PASSWORD_CHANGED:
		ch_payload_put_str(&w, "$y$j9T$newsalt$newhash");
		break;
	case CH_REC_ROOM_CREATED:
		ch_payload_put_str(&w, "general");
		ch_payload_put_u32(&w, 7);
		ch_payload_put_u32(&w, 3);
		ch_payload_put_u32(&w, 7);
		ch_payload_put_u32(&w, 8);
		ch_payload_put_u32(&w, 9);
		break;
	case CH_REC_PARTICIPANTS_CHANGED:
		ch_payload_put_u32(&w, 1);
		ch_payload_put_u32(&w, 10);
		ch_payload_put_u32(&w, 0);
		break;
	case CH_REC_MESSAGE:
		ch_payload_put_str(&w, "client-17");
		ch_payload_put_str(&w, "hello, world");
		break;
	case CH_REC_FILE_STORED:
		ch_payload_put_str(&w, "f1");
		ch_payload_put_u64(&w, 123456789012ull);
		ch_payload_put_str(&w, "cat.png");
		break;
	case CH_REC_FILE_REMOVED:
		ch_payload_put_str(&w, "f1");
		break;
	case CH_REC_EPOCH_BUMPED:
		ch_payload_put_u32(&w, 4);
		break;
	}
	ck_assert_int_eq(ch_payload_writer_finish(&w, &len), 0);
	return len;
}

static struct ch_record make_rec(uint16_t type, uint64_t pos, const uint8_t *pl,
				 size_t pl_len)
{
	struct ch_record r = {
		.type = type, .flags = 0, .epoch = 3, .pos = pos,
		.room = 0x01020304, .author = 0xA0B0C0D0,
		.room_seq = 0x1122334455667788ull, .ts_ms = 1700000000123ull,
		.payload = pl, .payload_len = (uint32_t)pl_len,
	};

	return r;
}

/* The header fields of two records (decoded, or decoded and encoded). */
static void assert_same_fields(const struct ch_record *a, const struct ch_record *b)
{
	ck_assert_uint_eq(a->epoch, b->epoch);
	ck_assert_uint_eq(a->pos, b->pos);
	ck_assert_uint_eq(a->room, b->room);
	ck_assert_uint_eq(a->author, b->author);
	ck_assert_uint_eq(a->room_seq, b->room_seq);
	ck_assert_uint_eq(a->ts_ms, b->ts_ms);
}

/* Encode a record whose payload is n bytes of a pattern; returns len. */
static size_t encode_n(uint64_t pos, size_t n)
{
	struct ch_record r;
	size_t len;

	for (size_t i = 0; i < n; i++)
		payload[i] = (uint8_t)(i * 31 + 7);
	r = make_rec(CH_REC_MESSAGE, pos, payload, n);
	len = ch_record_encode(buf, sizeof(buf), &r);
	ck_assert_uint_eq(len, ch_record_size(n));
	return len;
}

START_TEST(test_round_trip_every_type)
{
	for (size_t t = 0; t < N_TYPES; t++) {
		uint16_t type = all_types[t];
		size_t pl_len = build_payload(type, payload, sizeof(payload));
		struct ch_record in = make_rec(type, 4096 + 8 * t, payload, pl_len);
		struct ch_record out;
		size_t len;

		in.flags = (uint16_t)t;
		len = ch_record_encode(buf, sizeof(buf), &in);
		ck_assert_uint_eq(len % CH_RECORD_ALIGN, 0);
		ck_assert_uint_eq(len, ch_record_size(pl_len));
		ck_assert_int_eq(ch_record_decode(buf, len, in.pos, &out), CH_REC_OK);
		ck_assert_uint_eq(out.len, len);
		ck_assert_uint_eq(out.type, type);
		ck_assert_uint_eq(out.flags, t);
		assert_same_fields(&out, &in);
		ck_assert_uint_eq(out.payload_len, pl_len);
		ck_assert_ptr_eq(out.raw, buf);
		ck_assert_ptr_eq(out.payload, buf + CH_RECORD_HDR_SIZE);
		ck_assert_mem_eq(out.payload, payload, pl_len);
		ck_assert_ptr_nonnull(ch_record_type_name(type));
		/* Any position check passes too. */
		ck_assert_int_eq(ch_record_decode(buf, len, CH_RECORD_ANY_POS, &out),
				 CH_REC_OK);
	}
	ck_assert_ptr_null(ch_record_type_name(CH_REC_NONE));
	ck_assert_ptr_null(ch_record_type_name(CH_REC_EPOCH_BUMPED + 1));
	ck_assert_str_eq(ch_record_type_name(CH_REC_MESSAGE), "message");
}
END_TEST

START_TEST(test_layout_is_little_endian)
{
	struct ch_record r = make_rec(CH_REC_MESSAGE, 0x0807060504030201ull, NULL, 0);
	size_t len = ch_record_encode(buf, sizeof(buf), &r);

	ck_assert_uint_eq(len, 56);
	ck_assert_uint_eq(buf[0], 56);
	ck_assert_uint_eq(buf[1], 0);
	ck_assert_uint_eq(buf[8], CH_REC_MESSAGE);
	for (int i = 0; i < 8; i++)
		ck_assert_uint_eq(buf[16 + i], i + 1);
	ck_assert_uint_eq(buf[24], 0x04);	/* room 0x01020304 */
	ck_assert_uint_eq(buf[27], 0x01);
	/* The CRC covers bytes 8 .. end of payload. */
	{
		uint32_t crc = ch_crc32c(0, buf + 8, CH_RECORD_HDR_SIZE - 8);

		ck_assert_uint_eq(buf[4] | buf[5] << 8 | buf[6] << 16 |
				  (uint32_t)buf[7] << 24, crc);
	}
}
END_TEST

START_TEST(test_padding_zero_and_in_place)
{
	struct ch_payload_writer w;
	struct ch_record r, out;
	size_t pl_len, len;

	/* Dirty buffer: encode must zero the padding itself. */
	memset(buf, 0xEE, sizeof(buf));
	ch_payload_writer_init(&w, buf + CH_RECORD_HDR_SIZE,
			       sizeof(buf) - CH_RECORD_HDR_SIZE);
	ch_payload_put_str(&w, "abc");	/* 7 bytes: 52 + 7 -> 64, pad 5 */
	ck_assert_int_eq(ch_payload_writer_finish(&w, &pl_len), 0);
	r = make_rec(CH_REC_MESSAGE, 64, buf + CH_RECORD_HDR_SIZE, pl_len);
	len = ch_record_encode(buf, sizeof(buf), &r);
	ck_assert_uint_eq(len, 64);
	for (size_t i = CH_RECORD_HDR_SIZE + pl_len; i < len; i++)
		ck_assert_uint_eq(buf[i], 0);
	ck_assert_int_eq(ch_record_decode(buf, len, 64, &out), CH_REC_OK);
	ck_assert_mem_eq(out.payload + 4, "abc", 3);
}
END_TEST

/* Every single-bit flip anywhere in the record must be refused, for every
 * padding amount (payload 0..15 bytes). */
START_TEST(test_every_bit_flip_refused)
{
	struct ch_record out;

	for (size_t n = 0; n < 16; n++) {
		size_t len = encode_n(800, n);

		for (size_t byte = 0; byte < len; byte++) {
			for (int bit = 0; bit < 8; bit++) {
				enum ch_record_status st;

				buf[byte] ^= (uint8_t)(1u << bit);
				st = ch_record_decode(buf, len, 800, &out);
				ck_assert_msg(st != CH_REC_OK,
					      "payload %zu: flip of byte %zu bit %d accepted",
					      n, byte, bit);
				buf[byte] ^= (uint8_t)(1u << bit);
			}
		}
		ck_assert_int_eq(ch_record_decode(buf, len, 800, &out), CH_REC_OK);
	}
}
END_TEST

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

START_TEST(test_refusal_reasons)
{
	struct ch_record out;
	size_t len = encode_n(160, 20);	/* 52 + 20 = 72 */

	ck_assert_uint_eq(len, 72);
	ck_assert_int_eq(ch_record_decode(buf, len, 168, &out), CH_REC_BAD_POS);
	ck_assert_int_eq(ch_record_decode(buf, len, 152, &out), CH_REC_BAD_POS);

	buf[4] ^= 1;	/* crc field */
	ck_assert_int_eq(ch_record_decode(buf, len, 160, &out), CH_REC_BAD_CRC);
	buf[4] ^= 1;
	buf[60] ^= 0x80;	/* payload */
	ck_assert_int_eq(ch_record_decode(buf, len, 160, &out), CH_REC_BAD_CRC);
	buf[60] ^= 0x80;

	put_le32(buf, 48);	/* below the header */
	ck_assert_int_eq(ch_record_decode(buf, len, 160, &out), CH_REC_BAD_LENGTH);
	put_le32(buf, 0);
	ck_assert_int_eq(ch_record_decode(buf, len, 160, &out), CH_REC_BAD_LENGTH);
	put_le32(buf, 73);	/* not a multiple of 8 */
	ck_assert_int_eq(ch_record_decode(buf, sizeof(buf), 160, &out), CH_REC_BAD_LENGTH);
	put_le32(buf, 80);	/* aligned, but not what payload_len says */
	ck_assert_int_eq(ch_record_decode(buf, sizeof(buf), 160, &out), CH_REC_BAD_LENGTH);
	put_le32(buf, CH_RECORD_MAX + 8);
	ck_assert_int_eq(ch_record_decode(buf, sizeof(buf), 160, &out), CH_REC_TOO_LARGE);
	put_le32(buf, 0xFFFFFFF8u);
	ck_assert_int_eq(ch_record_decode(buf, sizeof(buf), 160, &out), CH_REC_TOO_LARGE);
	put_le32(buf, 72);
	ck_assert_int_eq(ch_record_decode(buf, len, 160, &out), CH_REC_OK);

	/* payload_len that pads to another len: the cross-check; one that
	 * pads to the same len: the CRC (payload_len is inside it). */
	put_le32(buf + 48, 21);
	ck_assert_int_eq(ch_record_decode(buf, len, 160, &out), CH_REC_BAD_LENGTH);
	put_le32(buf + 48, 19);
	ck_assert_int_eq(ch_record_decode(buf, len, 160, &out), CH_REC_BAD_CRC);
	put_le32(buf + 48, 0xFFFFFFF0u);
	ck_assert_int_eq(ch_record_decode(buf, len, 160, &out), CH_REC_BAD_LENGTH);
	put_le32(buf + 48, 20);

	len = encode_n(160, 17);	/* 52 + 17 -> 72: three bytes of padding */
	buf[len - 1] = 1;
	ck_assert_int_eq(ch_record_decode(buf, len, 160, &out), CH_REC_BAD_PADDING);
	buf[len - 1] = 0;
	ck_assert_int_eq(ch_record_decode(buf, len, 160, &out), CH_REC_OK);
	ck_assert_str_eq(ch_record_status_name(CH_REC_BAD_CRC), "checksum mismatch");
}
END_TEST

START_TEST(test_truncated_at_every_length)
{
	struct ch_record out;
	size_t len = encode_n(0, 100);

	for (size_t avail = 0; avail < len; avail++) {
		ck_assert_int_eq(ch_record_decode(buf, avail, 0, &out), CH_REC_TRUNCATED);
		/* Once the length field is there, the claim is reported. */
		ck_assert_uint_eq(out.len, avail < 4 ? 0 : len);
	}
	ck_assert_int_eq(ch_record_decode(buf, len, 0, &out), CH_REC_OK);
	/* Extra bytes after the record are not its business. */
	ck_assert_int_eq(ch_record_decode(buf, sizeof(buf), 0, &out), CH_REC_OK);
	ck_assert_uint_eq(out.len, len);
}
END_TEST

START_TEST(test_check_header_skips_crc)
{
	struct ch_record out;
	size_t len = encode_n(8, 10);

	buf[60] ^= 1;
	ck_assert_int_eq(ch_record_check_header(buf, len, 8, &out), CH_REC_OK);
	ck_assert_uint_eq(out.len, len);
	ck_assert_int_eq(ch_record_check_header(buf, len, 16, &out), CH_REC_BAD_POS);
	ck_assert_int_eq(ch_record_decode(buf, len, 8, &out), CH_REC_BAD_CRC);
}
END_TEST

/* decode_checked gives what decode gives, without computing the CRC. */
START_TEST(test_decode_checked)
{
	struct ch_record a, b;
	size_t len = encode_n(16, 33);

	ck_assert_int_eq(ch_record_decode(buf, len, 16, &a), CH_REC_OK);
	ck_assert_int_eq(ch_record_decode_checked(buf, len, 16, &b), CH_REC_OK);
	ck_assert_uint_eq(a.len, b.len);
	ck_assert_uint_eq(a.type, b.type);
	assert_same_fields(&a, &b);
	ck_assert_ptr_eq(a.payload, b.payload);
	ck_assert_uint_eq(a.payload_len, b.payload_len);
	ck_assert_int_eq(ch_record_decode_checked(buf, len, 24, &b), CH_REC_BAD_POS);
	buf[60] ^= 1;
	ck_assert_int_eq(ch_record_decode(buf, len, 16, &a), CH_REC_BAD_CRC);
	ck_assert_int_eq(ch_record_decode_checked(buf, len, 16, &b), CH_REC_OK);
}
END_TEST

START_TEST(test_size_limits)
{
	uint8_t *big = malloc(CH_RECORD_MAX + 64);
	struct ch_record r, out;
	size_t len;

	ck_assert_ptr_nonnull(big);
	memset(big, 0x5A, CH_RECORD_MAX + 64);
	/* The largest payload fills CH_RECORD_MAX exactly. */
	r = make_rec(CH_REC_MESSAGE, 0, big + CH_RECORD_HDR_SIZE, CH_RECORD_PAYLOAD_MAX);
	len = ch_record_encode(big, CH_RECORD_MAX, &r);
	ck_assert_uint_eq(len, CH_RECORD_MAX);
	ck_assert_int_eq(ch_record_decode(big, len, 0, &out), CH_REC_OK);
	/* One byte more is refused. */
	r.payload_len = CH_RECORD_PAYLOAD_MAX + 1;
	ck_assert_uint_eq(ch_record_encode(big, CH_RECORD_MAX + 64, &r), 0);
	free(big);

	/* A record that does not fit in cap: 0, nothing written past cap. */
	memset(buf, CANARY, sizeof(buf));
	for (size_t i = 0; i < 100; i++)
		payload[i] = (uint8_t)i;
	r = make_rec(CH_REC_MESSAGE, 0, payload, 100);
	ck_assert_uint_eq(ch_record_encode(buf, ch_record_size(100) - 1, &r), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		ck_assert_uint_eq(buf[i], CANARY);
	ck_assert_uint_eq(ch_record_encode(buf, ch_record_size(100), &r), ch_record_size(100));
	ck_assert_uint_eq(buf[ch_record_size(100)], CANARY);
}
END_TEST

START_TEST(test_payload_codec_round_trip)
{
	struct ch_payload_writer w;
	struct ch_payload_reader r;
	const uint8_t *p;
	char s[16];
	size_t len, n;

	ch_payload_writer_init(&w, payload, sizeof(payload));
	ch_payload_put_u32(&w, 0xDEADBEEF);
	ch_payload_put_u64(&w, 0x0123456789ABCDEFull);
	ch_payload_put_bytes(&w, "a\0b", 3);
	ch_payload_put_str(&w, "");
	ch_payload_put_str(&w, "bob");
	ck_assert_int_eq(ch_payload_writer_finish(&w, &len), 0);
	ck_assert_uint_eq(len, 4 + 8 + 4 + 3 + 4 + 4 + 3);

	ch_payload_reader_init(&r, payload, len);
	ck_assert_uint_eq(ch_payload_get_u32(&r), 0xDEADBEEF);
	ck_assert_uint_eq(ch_payload_get_u64(&r), 0x0123456789ABCDEFull);
	p = ch_payload_get_bytes(&r, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_mem_eq(p, "a\0b", 3);
	p = ch_payload_get_bytes(&r, &n);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(ch_payload_get_str(&r, s, sizeof(s)), 0);
	ck_assert_str_eq(s, "bob");
	ck_assert_int_eq(ch_payload_reader_finish(&r), 0);
}
END_TEST

START_TEST(test_payload_codec_bounds)
{
	struct ch_payload_writer w;
	struct ch_payload_reader r;
	uint8_t small[10];
	char s[4];
	size_t len, n;

	/* Writer: overflow is sticky and nothing is written past cap. */
	memset(small, CANARY, sizeof(small));
	ch_payload_writer_init(&w, small, 8);
	ch_payload_put_u32(&w, 1);
	ch_payload_put_bytes(&w, "xy", 2);	/* 4 + 2 > 4 left */
	ch_payload_put_u32(&w, 2);		/* would fit, but sticky */
	ck_assert_int_eq(ch_payload_writer_finish(&w, &len), -1);
	ck_assert_uint_eq(small[8], CANARY);
	ck_assert_uint_eq(small[4], CANARY);

	/* Reader: past the end. */
	ch_payload_writer_init(&w, payload, sizeof(payload));
	ch_payload_put_u32(&w, 5);
	ck_assert_int_eq(ch_payload_writer_finish(&w, &len), 0);
	ch_payload_reader_init(&r, payload, len);
	ck_assert_uint_eq(ch_payload_get_u64(&r), 0);	/* 4 bytes only */
	ck_assert_int_eq(ch_payload_reader_finish(&r), -1);
	ch_payload_reader_init(&r, payload, len);
	ck_assert_uint_eq(ch_payload_get_u32(&r), 5);
	ck_assert_uint_eq(ch_payload_get_u32(&r), 0);
	ck_assert_int_eq(ch_payload_reader_finish(&r), -1);

	/* A length prefix larger than what is left. */
	put_le32(payload, 5);
	memcpy(payload + 4, "abcd", 4);
	ch_payload_reader_init(&r, payload, 8);
	ck_assert_ptr_null(ch_payload_get_bytes(&r, &n));
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(ch_payload_reader_finish(&r), -1);
	put_le32(payload, 0xFFFFFFFFu);
	ch_payload_reader_init(&r, payload, 8);
	ck_assert_ptr_null(ch_payload_get_bytes(&r, &n));
	/* Exactly fitting is fine. */
	put_le32(payload, 4);
	ch_payload_reader_init(&r, payload, 8);
	ck_assert_ptr_nonnull(ch_payload_get_bytes(&r, &n));
	ck_assert_int_eq(ch_payload_reader_finish(&r), 0);

	/* Trailing bytes are an error. */
	ch_payload_reader_init(&r, payload, 9);
	ck_assert_ptr_nonnull(ch_payload_get_bytes(&r, &n));
	ck_assert_int_eq(ch_payload_reader_finish(&r), -1);

	/* get_str: too long for dst (needs room for the NUL). */
	ch_payload_reader_init(&r, payload, 8);
	ck_assert_int_eq(ch_payload_get_str(&r, s, 4), -1);
	ck_assert_str_eq(s, "");
	ck_assert_int_eq(ch_payload_reader_finish(&r), -1);
	/* get_str: an embedded NUL. */
	ch_payload_writer_init(&w, payload, sizeof(payload));
	ch_payload_put_bytes(&w, "a\0", 2);
	ck_assert_int_eq(ch_payload_writer_finish(&w, &len), 0);
	ch_payload_reader_init(&r, payload, len);
	ck_assert_int_eq(ch_payload_get_str(&r, s, sizeof(s)), -1);
	/* Sticky: a later read yields nothing. */
	ck_assert_uint_eq(ch_payload_get_u32(&r), 0);
}
END_TEST

/* Decoding the documented payload of each type back (what the journal will do). */
START_TEST(test_room_created_payload)
{
	struct ch_payload_reader r;
	size_t len = build_payload(CH_REC_ROOM_CREATED, payload, sizeof(payload));
	char name[64];
	uint32_t count;

	ch_payload_reader_init(&r, payload, len);
	ck_assert_int_eq(ch_payload_get_str(&r, name, sizeof(name)), 0);
	ck_assert_str_eq(name, "general");
	ck_assert_uint_eq(ch_payload_get_u32(&r), 7);
	count = ch_payload_get_u32(&r);
	ck_assert_uint_eq(count, 3);
	for (uint32_t i = 0; i < count; i++)
		ck_assert_uint_eq(ch_payload_get_u32(&r), 7 + i);
	ck_assert_int_eq(ch_payload_reader_finish(&r), 0);
}
END_TEST

static Suite *record_suite(void)
{
	Suite *s = suite_create("record");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_round_trip_every_type);
	tcase_add_test(tc, test_decode_checked);
	tcase_add_test(tc, test_layout_is_little_endian);
	tcase_add_test(tc, test_padding_zero_and_in_place);
	tcase_add_test(tc, test_every_bit_flip_refused);
	tcase_add_test(tc, test_refusal_reasons);
	tcase_add_test(tc, test_truncated_at_every_length);
	tcase_add_test(tc, test_check_header_skips_crc);
	tcase_add_test(tc, test_size_limits);
	tcase_add_test(tc, test_payload_codec_round_trip);
	tcase_add_test(tc, test_payload_codec_bounds);
	tcase_add_test(tc, test_room_created_payload);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(record_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
