/*
 * The replication wire protocol: see repl_proto.h. Everything here works
 * on caller buffers and keeps no state.
 */
#include "journal/repl_proto.h"

#include "journal/record.h"

#include <endian.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#define REPL_SMALL_BODY 128u	/* room for every body but RECORDS and ERROR */
#define REPL_MAC_LABEL "chatd replication v1"

/* The wire is little-endian throughout, as the payload codec. */
static void put_header(uint8_t *p, uint32_t body_len, uint16_t type)
{
	uint32_t len_le = htole32(body_len);
	uint16_t type_le = htole16(type), reserved = 0;

	memcpy(p, &len_le, 4);
	memcpy(p + 4, &type_le, 2);
	memcpy(p + 6, &reserved, 2);
}

long ch_repl_msg_cut(const void *buf, size_t avail, struct ch_repl_msg *m)
{
	const uint8_t *p = buf;
	uint32_t len;
	uint16_t type, reserved;

	if (avail < CH_REPL_HDR_SIZE)
		return 0;
	memcpy(&len, p, 4);
	memcpy(&type, p + 4, 2);
	memcpy(&reserved, p + 6, 2);
	len = le32toh(len);
	type = le16toh(type);
	if (len > CH_REPL_MSG_MAX || reserved != 0)
		return -EBADMSG;
	if (avail - CH_REPL_HDR_SIZE < len)
		return 0;
	m->type = type;
	m->len = len;
	m->body = p + CH_REPL_HDR_SIZE;
	return (long)(CH_REPL_HDR_SIZE + len);
}

/* Append a message whose body the payload writer of fill() builds. */
static void put_small(struct ch_buf *out, uint16_t type, size_t cap,
		      void (*fill)(struct ch_payload_writer *, const void *), const void *arg)
{
	struct ch_payload_writer w;
	size_t len = 0;

	if (ch_buf_reserve(out, CH_REPL_HDR_SIZE + cap) < 0)
		return;
	uint8_t *p = (uint8_t *)out->p + out->len;
	ch_payload_writer_init(&w, p + CH_REPL_HDR_SIZE, cap);
	fill(&w, arg);
	if (ch_payload_writer_finish(&w, &len) < 0) {
		out->failed = 1;
		return;
	}
	put_header(p, (uint32_t)len, type);
	out->len += CH_REPL_HDR_SIZE + len;
}

static void fill_hello(struct ch_payload_writer *w, const void *arg)
{
	const struct ch_repl_hello *h = arg;

	ch_payload_put_u32(w, CH_REPL_MAGIC);
	ch_payload_put_u32(w, CH_REPL_VERSION);
	ch_payload_put_u32(w, h->role);
	ch_payload_put_u32(w, h->epoch);
	ch_payload_put_u64(w, h->end);
	ch_payload_put_u32(w, h->last_epoch);
	ch_payload_put_u32(w, h->flags);
	ch_payload_put_bytes(w, h->nonce, CH_REPL_NONCE_SIZE);
}

void ch_repl_put_hello(struct ch_buf *out, const struct ch_repl_hello *h)
{
	put_small(out, CH_REPL_HELLO, REPL_SMALL_BODY, fill_hello, h);
}

static void fill_auth(struct ch_payload_writer *w, const void *arg)
{
	ch_payload_put_bytes(w, arg, CH_REPL_MAC_SIZE);
}

void ch_repl_put_auth(struct ch_buf *out, const uint8_t mac[CH_REPL_MAC_SIZE])
{
	put_small(out, CH_REPL_AUTH, REPL_SMALL_BODY, fill_auth, mac);
}

struct start_body {
	uint64_t from;
	uint32_t epoch;
};

static void fill_start(struct ch_payload_writer *w, const void *arg)
{
	const struct start_body *v = arg;

	ch_payload_put_u64(w, v->from);
	ch_payload_put_u32(w, v->epoch);
}

void ch_repl_put_start(struct ch_buf *out, uint64_t from, uint32_t epoch)
{
	struct start_body v = { .from = from, .epoch = epoch };

	put_small(out, CH_REPL_START, REPL_SMALL_BODY, fill_start, &v);
}

struct ack_body {
	uint64_t received, durable;
};

static void fill_ack(struct ch_payload_writer *w, const void *arg)
{
	const struct ack_body *v = arg;

	ch_payload_put_u64(w, v->received);
	ch_payload_put_u64(w, v->durable);
}

void ch_repl_put_ack(struct ch_buf *out, uint64_t received, uint64_t durable)
{
	struct ack_body v = { .received = received, .durable = durable };

	put_small(out, CH_REPL_ACK, REPL_SMALL_BODY, fill_ack, &v);
}

static void fill_error(struct ch_payload_writer *w, const void *arg)
{
	const char *s = arg;
	size_t n = strnlen(s, CH_REPL_ERROR_MAX);

	ch_payload_put_bytes(w, s, n);
}

void ch_repl_put_error(struct ch_buf *out, const char *reason)
{
	put_small(out, CH_REPL_ERROR, CH_REPL_ERROR_MAX + 8, fill_error, reason);
}

void ch_repl_put_records_head(struct ch_buf *out, uint64_t end, uint64_t ms,
			      size_t records_len)
{
	uint8_t head[CH_REPL_HDR_SIZE + CH_REPL_RECORDS_HDR];
	struct ch_payload_writer w;

	put_header(head, (uint32_t)(CH_REPL_RECORDS_HDR + records_len), CH_REPL_RECORDS);
	ch_payload_writer_init(&w, head + CH_REPL_HDR_SIZE, CH_REPL_RECORDS_HDR);
	ch_payload_put_u64(&w, end);
	ch_payload_put_u64(&w, ms);	/* exactly fills head: cannot fail */
	ch_buf_append(out, head, sizeof(head));
}

void ch_repl_set_records_len(struct ch_buf *out, size_t head_off, size_t records_len)
{
	put_header((uint8_t *)out->p + head_off, (uint32_t)(CH_REPL_RECORDS_HDR + records_len),
		   CH_REPL_RECORDS);
}

/* ---- decoders ---- */

static int reader_for(const struct ch_repl_msg *m, uint16_t type, struct ch_payload_reader *r)
{
	if (m->type != type)
		return -EBADMSG;
	ch_payload_reader_init(r, m->body, m->len);
	return 0;
}

int ch_repl_get_hello(const struct ch_repl_msg *m, struct ch_repl_hello *h)
{
	struct ch_payload_reader r;
	size_t n = 0;

	if (reader_for(m, CH_REPL_HELLO, &r) < 0)
		return -EBADMSG;
	uint32_t magic = ch_payload_get_u32(&r);
	uint32_t version = ch_payload_get_u32(&r);
	h->role = ch_payload_get_u32(&r);
	h->epoch = ch_payload_get_u32(&r);
	h->end = ch_payload_get_u64(&r);
	h->last_epoch = ch_payload_get_u32(&r);
	h->flags = ch_payload_get_u32(&r);
	const uint8_t *nonce = ch_payload_get_bytes(&r, &n);
	if (ch_payload_reader_finish(&r) < 0 || magic != CH_REPL_MAGIC ||
	    version != CH_REPL_VERSION || n != CH_REPL_NONCE_SIZE)
		return -EBADMSG;
	memcpy(h->nonce, nonce, CH_REPL_NONCE_SIZE);
	return 0;
}

int ch_repl_get_auth(const struct ch_repl_msg *m, uint8_t mac[CH_REPL_MAC_SIZE])
{
	struct ch_payload_reader r;
	size_t n = 0;

	if (reader_for(m, CH_REPL_AUTH, &r) < 0)
		return -EBADMSG;
	const uint8_t *p = ch_payload_get_bytes(&r, &n);
	if (ch_payload_reader_finish(&r) < 0 || n != CH_REPL_MAC_SIZE)
		return -EBADMSG;
	memcpy(mac, p, CH_REPL_MAC_SIZE);
	return 0;
}

int ch_repl_get_start(const struct ch_repl_msg *m, uint64_t *from, uint32_t *epoch)
{
	struct ch_payload_reader r;

	if (reader_for(m, CH_REPL_START, &r) < 0)
		return -EBADMSG;
	*from = ch_payload_get_u64(&r);
	*epoch = ch_payload_get_u32(&r);
	return ch_payload_reader_finish(&r) < 0 || *from % CH_RECORD_ALIGN ? -EBADMSG : 0;
}

int ch_repl_get_ack(const struct ch_repl_msg *m, uint64_t *received, uint64_t *durable)
{
	struct ch_payload_reader r;

	if (reader_for(m, CH_REPL_ACK, &r) < 0)
		return -EBADMSG;
	*received = ch_payload_get_u64(&r);
	*durable = ch_payload_get_u64(&r);
	return ch_payload_reader_finish(&r) < 0 || *durable > *received ? -EBADMSG : 0;
}

int ch_repl_get_error(const struct ch_repl_msg *m, char *reason, size_t cap)
{
	struct ch_payload_reader r;
	size_t n = 0;

	if (cap == 0 || reader_for(m, CH_REPL_ERROR, &r) < 0)
		return -EBADMSG;
	const uint8_t *p = ch_payload_get_bytes(&r, &n);
	if (ch_payload_reader_finish(&r) < 0)
		return -EBADMSG;
	if (n >= cap)
		n = cap - 1;
	memcpy(reason, p, n);
	reason[n] = '\0';
	/* For people: no control bytes into our log. */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)reason[i] < 0x20)
			reason[i] = '?';
	return 0;
}

int ch_repl_get_records(const struct ch_repl_msg *m, uint64_t *end, uint64_t *ms,
			const uint8_t **recs, size_t *len)
{
	struct ch_payload_reader r;

	if (reader_for(m, CH_REPL_RECORDS, &r) < 0)
		return -EBADMSG;
	*end = ch_payload_get_u64(&r);
	*ms = ch_payload_get_u64(&r);
	if (r.failed)
		return -EBADMSG;
	/* The rest is records as they lie in the log, not payload fields. */
	*recs = m->body + r.off;
	*len = m->len - r.off;
	return 0;
}

/* ---- the challenge ---- */

int ch_repl_mac(const void *secret, size_t secret_len,
		 const uint8_t nonce[CH_REPL_NONCE_SIZE], uint32_t role,
		 uint8_t mac[CH_REPL_MAC_SIZE])
{
	/* The label and the role in the input: a MAC made for one purpose
	 * or by one side cannot be replayed as the other's. */
	uint8_t in[sizeof(REPL_MAC_LABEL) + CH_REPL_NONCE_SIZE + sizeof(role)];
	unsigned int n = CH_REPL_MAC_SIZE;

	memcpy(in, REPL_MAC_LABEL, sizeof(REPL_MAC_LABEL));
	memcpy(in + sizeof(REPL_MAC_LABEL), nonce, CH_REPL_NONCE_SIZE);
	memcpy(in + sizeof(REPL_MAC_LABEL) + CH_REPL_NONCE_SIZE, &role, sizeof(role));
	if (!HMAC(EVP_sha256(), secret, (int)secret_len, in, sizeof(in), mac, &n) ||
	    n != CH_REPL_MAC_SIZE)
		return -1;
	return 0;
}

int ch_repl_mac_equal(const uint8_t a[CH_REPL_MAC_SIZE], const uint8_t b[CH_REPL_MAC_SIZE])
{
	return CRYPTO_memcmp(a, b, CH_REPL_MAC_SIZE) == 0;
}
