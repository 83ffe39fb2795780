/*
 * Replication wire protocol (journal/repl_proto.h): every message round
 * trips, framing waits for whole messages at every cut, refuses oversize
 * and reserved bits, decoders refuse the wrong type and short or trailing
 * bodies, and the HMAC challenge tells a right secret from a wrong one and
 * one role from the other.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "journal/record.h"
#include "journal/repl_proto.h"

static struct ch_repl_msg cut_one(const struct ch_buf *b, size_t off, long *used)
{
	struct ch_repl_msg m = { 0 };
	*used = ch_repl_msg_cut(b->p + off, b->len - off, &m);
	return m;
}

START_TEST(hello_round_trip)
{
	struct ch_buf b;
	struct ch_repl_hello h = { .role = 1, .epoch = 7, .end = 123456, .last_epoch = 6,
				   .flags = CH_REPL_HELLO_AUTH }, got;
	long used;

	for (size_t i = 0; i < CH_REPL_NONCE_SIZE; i++)
		h.nonce[i] = (uint8_t)(i * 7 + 1);
	ch_buf_init(&b);
	ch_repl_put_hello(&b, &h);
	ck_assert(!b.failed);
	struct ch_repl_msg m = cut_one(&b, 0, &used);
	ck_assert_int_eq(used, (long)b.len);
	ck_assert_int_eq(m.type, CH_REPL_HELLO);
	ck_assert_int_eq(ch_repl_get_hello(&m, &got), 0);
	ck_assert_uint_eq(got.role, 1);
	ck_assert_uint_eq(got.epoch, 7);
	ck_assert_uint_eq(got.end, 123456);
	ck_assert_uint_eq(got.last_epoch, 6);
	ck_assert_uint_eq(got.flags, CH_REPL_HELLO_AUTH);
	ck_assert_mem_eq(got.nonce, h.nonce, CH_REPL_NONCE_SIZE);
	/* Any other decoder refuses a HELLO. */
	uint64_t a, d;
	uint32_t e;
	ck_assert_int_eq(ch_repl_get_ack(&m, &a, &d), -EBADMSG);
	ck_assert_int_eq(ch_repl_get_start(&m, &a, &e), -EBADMSG);
	ch_buf_free(&b);
}
END_TEST

START_TEST(hello_bad_magic_or_version)
{
	struct ch_buf b;
	struct ch_repl_hello h = { .role = 0, .epoch = 1 }, got;
	long used;

	ch_buf_init(&b);
	ch_repl_put_hello(&b, &h);
	/* magic is the first u32 of the body */
	b.p[CH_REPL_HDR_SIZE] ^= 1;
	struct ch_repl_msg m = cut_one(&b, 0, &used);
	ck_assert_int_eq(ch_repl_get_hello(&m, &got), -EBADMSG);
	b.p[CH_REPL_HDR_SIZE] ^= 1;
	b.p[CH_REPL_HDR_SIZE + 4] ^= 2;	/* version */
	m = cut_one(&b, 0, &used);
	ck_assert_int_eq(ch_repl_get_hello(&m, &got), -EBADMSG);
	ch_buf_free(&b);
}
END_TEST

START_TEST(small_messages_round_trip)
{
	struct ch_buf b;
	uint8_t mac[CH_REPL_MAC_SIZE], got_mac[CH_REPL_MAC_SIZE];
	uint64_t from, rcv, dur;
	uint32_t epoch;
	char reason[64];
	long used;
	size_t off = 0;

	memset(mac, 0x5a, sizeof(mac));
	ch_buf_init(&b);
	ch_repl_put_auth(&b, mac);
	ch_repl_put_start(&b, 4096, 3);
	ch_repl_put_ack(&b, 8192, 4096);
	ch_repl_put_error(&b, "wrong\nsecret");
	ck_assert(!b.failed);

	struct ch_repl_msg m = cut_one(&b, off, &used);
	off += (size_t)used;
	ck_assert_int_eq(ch_repl_get_auth(&m, got_mac), 0);
	ck_assert_mem_eq(got_mac, mac, sizeof(mac));
	m = cut_one(&b, off, &used);
	off += (size_t)used;
	ck_assert_int_eq(ch_repl_get_start(&m, &from, &epoch), 0);
	ck_assert_uint_eq(from, 4096);
	ck_assert_uint_eq(epoch, 3);
	m = cut_one(&b, off, &used);
	off += (size_t)used;
	ck_assert_int_eq(ch_repl_get_ack(&m, &rcv, &dur), 0);
	ck_assert_uint_eq(rcv, 8192);
	ck_assert_uint_eq(dur, 4096);
	m = cut_one(&b, off, &used);
	off += (size_t)used;
	ck_assert_int_eq(ch_repl_get_error(&m, reason, sizeof(reason)), 0);
	ck_assert_str_eq(reason, "wrong?secret");	/* control bytes masked */
	ck_assert_uint_eq(off, b.len);
	ch_buf_free(&b);
}
END_TEST

START_TEST(ack_durable_past_received_refused)
{
	struct ch_buf b;
	uint64_t rcv, dur;
	long used;

	ch_buf_init(&b);
	ch_repl_put_ack(&b, 100, 200);
	struct ch_repl_msg m = cut_one(&b, 0, &used);
	ck_assert_int_eq(ch_repl_get_ack(&m, &rcv, &dur), -EBADMSG);
	ch_buf_free(&b);
}
END_TEST

START_TEST(start_unaligned_refused)
{
	struct ch_buf b;
	uint64_t from;
	uint32_t epoch;
	long used;

	ch_buf_init(&b);
	ch_repl_put_start(&b, 4097, 1);
	struct ch_repl_msg m = cut_one(&b, 0, &used);
	ck_assert_int_eq(ch_repl_get_start(&m, &from, &epoch), -EBADMSG);
	ch_buf_free(&b);
}
END_TEST

/* Two encoded records, as they lie in a log from position 0. */
static size_t two_records(uint8_t *out, size_t cap)
{
	const char *payload = "hello";
	struct ch_record rec = { .type = CH_REC_MESSAGE, .epoch = 1, .pos = 0, .room = 1,
				 .author = 1, .room_seq = 1, .ts_ms = 1000,
				 .payload = (const uint8_t *)payload, .payload_len = 5 };
	size_t n = ch_record_encode(out, cap, &rec);
	rec.pos = n;
	rec.room_seq = 2;
	return n + ch_record_encode(out + n, cap - n, &rec);
}

START_TEST(records_round_trip)
{
	struct ch_buf b;
	uint8_t recs[512];
	size_t n = two_records(recs, sizeof(recs));
	uint64_t end, ms;
	const uint8_t *p;
	size_t len;
	long used;

	ck_assert_uint_gt(n, 0);
	ch_buf_init(&b);
	ch_repl_put_records_head(&b, 999, 42, n);
	ch_buf_append(&b, recs, n);
	struct ch_repl_msg m = cut_one(&b, 0, &used);
	ck_assert_int_eq(used, (long)b.len);
	ck_assert_int_eq(ch_repl_get_records(&m, &end, &ms, &p, &len), 0);
	ck_assert_uint_eq(end, 999);
	ck_assert_uint_eq(ms, 42);
	ck_assert_uint_eq(len, n);
	ck_assert_mem_eq(p, recs, n);
	struct ch_record rec;
	ck_assert_int_eq(ch_record_decode(p, len, 0, &rec), CH_REC_OK);
	ck_assert_int_eq(ch_record_decode(p + rec.len, len - rec.len, rec.len, &rec), CH_REC_OK);
	ch_buf_free(&b);

	/* A heartbeat: no records. */
	ch_buf_init(&b);
	ch_repl_put_records_head(&b, 5, 6, 0);
	m = cut_one(&b, 0, &used);
	ck_assert_int_eq(ch_repl_get_records(&m, &end, &ms, &p, &len), 0);
	ck_assert_uint_eq(len, 0);
	ch_buf_free(&b);
}
END_TEST

/* The primary puts the head before it knows how many records follow, then
 * sets the length: the bytes on the wire are little-endian whatever the
 * host, as repl_proto.h says. */
START_TEST(records_length_set_later_is_little_endian)
{
	static const uint8_t want_head[CH_REPL_HDR_SIZE + CH_REPL_RECORDS_HDR] = {
		0x10 + 0x34, 0x02, 0, 0,	/* body_len 16 + 0x234 */
		CH_REPL_RECORDS, 0, 0, 0,	/* type, reserved */
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,	/* end */
		0x2a, 0, 0, 0, 0, 0, 0, 0,	/* ms */
	};
	uint8_t recs[0x234];
	struct ch_buf b;
	long used;

	memset(recs, 0xab, sizeof(recs));
	ch_buf_init(&b);
	ch_buf_append(&b, "x", 1);	/* the head need not start the buffer */
	ch_repl_put_records_head(&b, 0x0102030405060708ull, 42, 0);
	ch_buf_append(&b, recs, sizeof(recs));
	ch_repl_set_records_len(&b, 1, sizeof(recs));
	ck_assert_mem_eq(b.p + 1, want_head, sizeof(want_head));
	struct ch_repl_msg m = cut_one(&b, 1, &used);
	ck_assert_int_eq(used, (long)(b.len - 1));
	ck_assert_uint_eq(m.len, CH_REPL_RECORDS_HDR + sizeof(recs));
	ch_buf_free(&b);
}
END_TEST

START_TEST(cut_waits_for_whole_message)
{
	struct ch_buf b;
	struct ch_repl_msg m;

	ch_buf_init(&b);
	ch_repl_put_start(&b, 8, 1);
	ch_repl_put_ack(&b, 16, 8);
	/* Every prefix shorter than the first message is "need more". */
	long first = ch_repl_msg_cut(b.p, b.len, &m);
	ck_assert_int_gt(first, 0);
	for (long k = 0; k < first; k++)
		ck_assert_int_eq(ch_repl_msg_cut(b.p, (size_t)k, &m), 0);
	ck_assert_int_eq(ch_repl_msg_cut(b.p, (size_t)first, &m), first);
	ch_buf_free(&b);
}
END_TEST

START_TEST(cut_refuses_bad_headers)
{
	uint8_t h[CH_REPL_HDR_SIZE] = { 0 };
	struct ch_repl_msg m;
	uint32_t len = CH_REPL_MSG_MAX + 1;
	uint16_t type = CH_REPL_ACK, reserved = 1;

	memcpy(h, &len, 4);
	memcpy(h + 4, &type, 2);
	ck_assert_int_eq(ch_repl_msg_cut(h, sizeof(h), &m), -EBADMSG);
	len = 0;
	memcpy(h, &len, 4);
	memcpy(h + 6, &reserved, 2);
	ck_assert_int_eq(ch_repl_msg_cut(h, sizeof(h), &m), -EBADMSG);
	reserved = 0;
	memcpy(h + 6, &reserved, 2);
	ck_assert_int_eq(ch_repl_msg_cut(h, sizeof(h), &m), (long)sizeof(h));
	ck_assert_uint_eq(m.len, 0);
}
END_TEST

START_TEST(short_and_trailing_bodies_refused)
{
	struct ch_buf b;
	uint64_t rcv, dur;
	long used;

	ch_buf_init(&b);
	ch_repl_put_ack(&b, 16, 8);
	struct ch_repl_msg m = cut_one(&b, 0, &used);
	m.len -= 1;		/* one byte short */
	ck_assert_int_eq(ch_repl_get_ack(&m, &rcv, &dur), -EBADMSG);
	m.len += 2;		/* one byte extra */
	ck_assert_int_eq(ch_repl_get_ack(&m, &rcv, &dur), -EBADMSG);
	ch_buf_free(&b);
}
END_TEST

START_TEST(mac_checks_secret_nonce_role)
{
	uint8_t nonce[CH_REPL_NONCE_SIZE], other[CH_REPL_NONCE_SIZE];
	uint8_t a[CH_REPL_MAC_SIZE], b[CH_REPL_MAC_SIZE];

	memset(nonce, 1, sizeof(nonce));
	memset(other, 2, sizeof(other));
	ck_assert_int_eq(ch_repl_mac("s3cret", 6, nonce, 0, a), 0);
	ck_assert_int_eq(ch_repl_mac("s3cret", 6, nonce, 0, b), 0);
	ck_assert(ch_repl_mac_equal(a, b));
	ck_assert_int_eq(ch_repl_mac("s3creT", 6, nonce, 0, b), 0);
	ck_assert(!ch_repl_mac_equal(a, b));
	ck_assert_int_eq(ch_repl_mac("s3cret", 6, other, 0, b), 0);
	ck_assert(!ch_repl_mac_equal(a, b));
	ck_assert_int_eq(ch_repl_mac("s3cret", 6, nonce, 1, b), 0);
	ck_assert(!ch_repl_mac_equal(a, b));
}
END_TEST

static Suite *repl_proto_suite(void)
{
	Suite *s = suite_create("repl_proto");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, hello_round_trip);
	tcase_add_test(tc, hello_bad_magic_or_version);
	tcase_add_test(tc, small_messages_round_trip);
	tcase_add_test(tc, ack_durable_past_received_refused);
	tcase_add_test(tc, start_unaligned_refused);
	tcase_add_test(tc, records_round_trip);
	tcase_add_test(tc, records_length_set_later_is_little_endian);
	tcase_add_test(tc, cut_waits_for_whole_message);
	tcase_add_test(tc, cut_refuses_bad_headers);
	tcase_add_test(tc, short_and_trailing_bodies_refused);
	tcase_add_test(tc, mac_checks_secret_nonce_role);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(repl_proto_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
