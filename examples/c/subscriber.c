/* A moodwire subscriber in C, written from docs/schema.md alone: libzmq + msgpack-c.
 *
 * Subscribes to affect.frame and prints one line per frame:
 *   frame_index=12 t_capture=123456789 valid=1 persons=1; track_id=1 label=happy valence=0.5 arousal=0.2 confidence=0.7
 * (track_id=none for a person without a face; floats printed with 17 significant digits, exact).
 *
 * usage: subscriber [ENDPOINT] [COUNT] [TIMEOUT_S]
 *   ENDPOINT   default tcp://127.0.0.1:5560 (moodwire's public endpoint)
 *   COUNT      exit 0 after this many frames (default 10)
 *   TIMEOUT_S  exit 1 if no message comes for this long (default 10)
 *
 * It prints every frame it receives; a control loop would rather drain the socket and keep only
 * the newest frame (affect.frame is latest-only, docs/schema.md section 3).
 */

#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define TOPIC "affect.frame"
#define SUPPORTED_VERSION 1
#define MAX_TOPIC_BYTES 128
#define MAX_HEADER_BYTES (1 << 20)

/* The value under `key` in a msgpack map, or NULL. Unknown keys are simply never asked for. */
static const msgpack_object *get(const msgpack_object *map, const char *key) {
    if (map == NULL || map->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == n &&
            memcmp(kv->key.via.str.ptr, key, n) == 0)
            return &kv->val;
    }
    return NULL;
}

/* int: any msgpack integer family (schema 2.1). */
static int as_int(const msgpack_object *o, int64_t *out) {
    if (o == NULL) return 0;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) { *out = (int64_t)o->via.u64; return 1; }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) { *out = o->via.i64; return 1; }
    return 0;
}

/* float: float 64, float 32 or an integer (schema 2.1). */
static int as_double(const msgpack_object *o, double *out) {
    if (o == NULL) return 0;
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT64:
    case MSGPACK_OBJECT_FLOAT32: *out = o->via.f64; return 1;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double)o->via.u64; return 1;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double)o->via.i64; return 1;
    default: return 0;
    }
}

/* The label with the highest probability, or NULL when labels and probs do not pair up. */
static const msgpack_object_str *top_label(const msgpack_object *labels, const msgpack_object *probs) {
    if (labels == NULL || probs == NULL || labels->type != MSGPACK_OBJECT_ARRAY ||
        probs->type != MSGPACK_OBJECT_ARRAY || labels->via.array.size != probs->via.array.size)
        return NULL;
    const msgpack_object_str *best = NULL;
    double best_p = -1.0, p;
    for (uint32_t i = 0; i < probs->via.array.size; i++) {
        const msgpack_object *label = &labels->via.array.ptr[i];
        if (label->type == MSGPACK_OBJECT_STR && as_double(&probs->via.array.ptr[i], &p) && p > best_p) {
            best_p = p;
            best = &label->via.str;
        }
    }
    return best;
}

/* One person map of affect.frame (schema 3.10), appended to the line. 0 if a field is missing. */
static int print_person(const msgpack_object *person) {
    const msgpack_object *track = get(person, "track_id");
    double valence, arousal, confidence;
    int64_t track_id;
    if (track == NULL || !as_double(get(person, "valence"), &valence) ||
        !as_double(get(person, "arousal"), &arousal) || !as_double(get(person, "confidence"), &confidence))
        return 0;
    if (track->type == MSGPACK_OBJECT_NIL) printf("; track_id=none");
    else if (as_int(track, &track_id)) printf("; track_id=%" PRId64, track_id);
    else return 0;
    const msgpack_object_str *label = top_label(get(person, "labels"), get(person, "probs"));
    printf(" label=%.*s valence=%.17g arousal=%.17g confidence=%.17g",
           label ? (int)label->size : 1, label ? label->ptr : "-", valence, arousal, confidence);
    return 1;
}

/* Decode one header and print its line; 0 (and a message on stderr) if it is not a usable frame. */
static int print_frame(const char *data, size_t size) {
    msgpack_unpacked result;
    msgpack_unpacked_init(&result);
    size_t offset = 0;
    int ok = 0;
    if (msgpack_unpack_next(&result, data, size, &offset) != MSGPACK_UNPACK_SUCCESS) {
        fprintf(stderr, "skipped: the header is not msgpack\n");
        goto done;
    }
    const msgpack_object *header = &result.data;
    int64_t v, frame_index, t_capture;
    const msgpack_object *valid = get(header, "valid"), *persons = get(header, "persons");
    if (header->type != MSGPACK_OBJECT_MAP || !as_int(get(header, "v"), &v)) {
        fprintf(stderr, "skipped: the header is not a map with an integer v\n");
        goto done;
    }
    if (v > SUPPORTED_VERSION) {
        fprintf(stderr, "skipped: schema version %" PRId64 " is newer than this client (%d): upgrade it\n",
                v, SUPPORTED_VERSION);
        goto done;
    }
    if (!as_int(get(header, "frame_index"), &frame_index) || !as_int(get(header, "t_capture"), &t_capture) ||
        valid == NULL || valid->type != MSGPACK_OBJECT_BOOLEAN) {
        fprintf(stderr, "skipped: frame_index, t_capture or valid missing\n");
        goto done;
    }
    uint32_t n = (persons != NULL && persons->type == MSGPACK_OBJECT_ARRAY) ? persons->via.array.size : 0;
    printf("frame_index=%" PRId64 " t_capture=%" PRId64 " valid=%d persons=%" PRIu32,
           frame_index, t_capture, valid->via.boolean ? 1 : 0, n);
    ok = 1;
    for (uint32_t i = 0; i < n; i++) {
        if (!print_person(&persons->via.array.ptr[i])) {
            printf("; (malformed person)");
            ok = 0;
        }
    }
    printf("\n");
    fflush(stdout);
done:
    msgpack_unpacked_destroy(&result);
    return ok;
}

/* Receive one multipart message: frame 0 (topic) and 1 (header) into the given messages, the rest
 * (array buffers; affect.frame has none) discarded. Returns the number of frames, -1 on error. */
static int recv_message(void *sock, zmq_msg_t *topic, zmq_msg_t *header) {
    int frames = 0, more = 1;
    while (more) {
        zmq_msg_t part;
        zmq_msg_t *into = frames == 0 ? topic : frames == 1 ? header : &part;
        if (frames >= 2) zmq_msg_init(&part);
        if (zmq_msg_recv(into, sock, 0) < 0) {
            if (frames >= 2) zmq_msg_close(&part);
            return -1;
        }
        more = zmq_msg_more(into);
        if (frames >= 2) zmq_msg_close(&part);
        frames++;
    }
    return frames;
}

int main(int argc, char **argv) {
    const char *endpoint = argc > 1 ? argv[1] : "tcp://127.0.0.1:5560";
    long count = argc > 2 ? strtol(argv[2], NULL, 10) : 10;
    int timeout_ms = (int)(1000 * (argc > 3 ? strtod(argv[3], NULL) : 10.0));
    if (count <= 0 || timeout_ms <= 0) {
        fprintf(stderr, "usage: %s [ENDPOINT] [COUNT>0] [TIMEOUT_S>0]\n", argv[0]);
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sub, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, TOPIC, strlen(TOPIC));
    if (zmq_connect(sub, endpoint) != 0) {
        fprintf(stderr, "cannot connect to %s: %s\n", endpoint, zmq_strerror(errno));
        return 2;
    }
    int status = 0;
    long printed = 0;
    while (printed < count) {
        zmq_msg_t topic, header;
        zmq_msg_init(&topic);
        zmq_msg_init(&header);
        int frames = recv_message(sub, &topic, &header);
        if (frames < 0) {
            fprintf(stderr, "no message from %s within %d ms (%s): is moodwire running?\n",
                    endpoint, timeout_ms, zmq_strerror(errno));
            status = 1;
        } else if (frames < 2 || zmq_msg_size(&topic) > MAX_TOPIC_BYTES || zmq_msg_size(&header) > MAX_HEADER_BYTES) {
            fprintf(stderr, "skipped: not [topic, header, *buffers] within the limits\n");
        } else if (zmq_msg_size(&topic) == strlen(TOPIC) && memcmp(zmq_msg_data(&topic), TOPIC, strlen(TOPIC)) == 0) {
            /* the prefix also matches longer topic names; only affect.frame itself is decoded */
            printed += print_frame(zmq_msg_data(&header), zmq_msg_size(&header));
        }
        zmq_msg_close(&topic);
        zmq_msg_close(&header);
        if (status) break;
    }
    zmq_close(sub);
    zmq_ctx_term(ctx);
    return status;
}
