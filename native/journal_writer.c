/*
 * issue 18: the lease journal's writer thread. The journal's group commit (src/dhcp/lease-store.ts) ran as one libuv
 * thread-pool job per batch (write + fdatasync), then a callback on the loop resolved the commits, the transport
 * encoded and sent the ACKs, and only then could the next batch start. Measured at 4 exchanges in flight (a timeline
 * of each REQUEST, bench/PROFILE.md), an ACK waited not only for its own sync but for that round trip through the
 * event loop twice: the completion of the sync before it, the hand-off of its own job to a pool thread, and the
 * completion, promise chain and sendmmsg after it.
 *
 * Here one thread per journal owns the group commit:
 *   - JS submits a batch (the lines to append, and optionally the replies that may leave once they are durable:
 *     DHCP ACKs already encoded) and returns at once; batches queue in submission order.
 *   - The thread takes everything queued as one group: one writev of every batch's lines at the end of the file
 *     (opened O_APPEND), one fdatasync, then one sendmmsg of the group's replies on their UDP sockets. A group that
 *     arrives while a sync runs starts right after it, without a trip through the loop.
 *   - Then it posts the results to the loop (uv_async), where JS applies the changes to its state and counts.
 *
 * The crash guarantee is the journal's: a reply leaves only after its lines and every line before them are
 * fdatasync'd. A failed write or sync fails its group and every group after it (their lines would follow bytes the
 * file may or may not hold) without writing or sending anything, until JS has rolled the file back to its last good
 * size and called journalWriterReset. JS never closes a reply's socket while a batch holding it is outstanding.
 */
#define _GNU_SOURCE
#include "natd_native.h"
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* iovecs per writev (IOV_MAX is 1024 on Linux) */
#define WRITE_IOV 256

typedef struct batch {
  struct batch *next;
  napi_ref data_ref, replies_ref, done_ref;
  const unsigned char *data;
  size_t length;
  uint32_t count; /* replies */
  struct iovec *reply_iov;
  uint32_t *reply_meta; /* fd, IPv4 address, port per reply (a copy) */
  int32_t *reply_errno; /* 0: sent */
  double submitted_us;
  /* filled by the thread */
  int error;
  int first_of_group; /* this batch's group's write + sync is counted on its first batch */
  double sync_us;     /* the group's write + fdatasync */
  double done_us;     /* when its replies were sent (or it became durable, without replies) */
} batch_t;

typedef struct {
  napi_env env;
  uv_async_t async;
  napi_async_context async_context;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  batch_t *queue_head, *queue_tail; /* submitted, not yet taken by the thread */
  batch_t *done_head, *done_tail;   /* processed, not yet reported to JS */
  int fd;
  int failed; /* errno of the failure that stops every later group until reset */
  int stopping;
  int closed;
  int owners; /* the JS handle and the uv handle: freed when both are gone (loop thread only) */
  uint32_t outstanding; /* batches submitted and not yet reported (loop thread only) */
} writer_t;

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Appends every byte of the group's batches (one writev per up to WRITE_IOV batches, partial writes continued). */
static int write_group(int fd, batch_t *first) {
  struct iovec iov[WRITE_IOV];
  batch_t *b = first;
  while (b != NULL) {
    int n = 0;
    for (; b != NULL && n < WRITE_IOV; b = b->next) {
      if (b->length == 0) continue;
      iov[n].iov_base = (void *)b->data;
      iov[n].iov_len = b->length;
      n++;
    }
    int at = 0;
    while (at < n) {
      ssize_t w = writev(fd, iov + at, n - at);
      if (w < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      if (w == 0) return EIO; /* a regular file that takes nothing: an I/O error rather than a spin */
      size_t left = (size_t)w;
      while (at < n && left >= iov[at].iov_len) left -= iov[at++].iov_len;
      if (at < n) {
        iov[at].iov_base = (char *)iov[at].iov_base + left;
        iov[at].iov_len -= left;
      }
    }
  }
  return 0;
}

/* Sends the replies of one batch (IPv4, one sendmmsg per run of the same socket); a reply that cannot go is
 * skipped with its errno, the rest still go. */
static void send_replies(batch_t *b) {
  uint32_t i = 0;
  while (i < b->count) {
    int fd = (int)b->reply_meta[3 * i];
    uint32_t end = i;
    while (end < b->count && (int)b->reply_meta[3 * end] == fd) end++;
    uint32_t n = end - i;
    struct mmsghdr *msgs = calloc(n, sizeof *msgs);
    struct sockaddr_in *to = calloc(n, sizeof *to);
    if (msgs == NULL || to == NULL) {
      for (uint32_t k = i; k < end; k++) b->reply_errno[k] = ENOMEM;
    } else {
      for (uint32_t k = 0; k < n; k++) {
        const uint32_t *m = b->reply_meta + 3 * (i + k);
        to[k].sin_family = AF_INET;
        to[k].sin_addr.s_addr = htonl(m[1]);
        to[k].sin_port = htons((uint16_t)m[2]);
        msgs[k].msg_hdr.msg_name = &to[k];
        msgs[k].msg_hdr.msg_namelen = sizeof to[k];
        msgs[k].msg_hdr.msg_iov = &b->reply_iov[i + k];
        msgs[k].msg_hdr.msg_iovlen = 1;
      }
      int last_error = 0, gone = 0;
      send_all(fd, msgs, n, b->reply_errno + i, &last_error, &gone);
    }
    free(msgs);
    free(to);
    i = end;
  }
}

static void *writer_main(void *arg) {
  writer_t *w = arg;
  pthread_mutex_lock(&w->lock);
  for (;;) {
    while (w->queue_head == NULL && !w->stopping) pthread_cond_wait(&w->wake, &w->lock);
    if (w->queue_head == NULL) break; /* stopping, and nothing left */
    batch_t *group = w->queue_head, *last = w->queue_tail;
    w->queue_head = w->queue_tail = NULL;
    int fd = w->fd, failed = w->failed;
    pthread_mutex_unlock(&w->lock);

    int error = failed;
    double started = now_us(), synced = started;
    if (error == 0) {
      error = write_group(fd, group);
      if (error == 0) {
        int rc;
        do rc = fdatasync(fd);
        while (rc != 0 && errno == EINTR);
        if (rc != 0) error = errno;
      }
      synced = now_us();
    }
    for (batch_t *b = group; b != NULL; b = b->next) {
      b->error = error;
      b->first_of_group = b == group && failed == 0;
      b->sync_us = synced - started;
      if (error == 0 && b->count > 0) send_replies(b);
      b->done_us = now_us();
    }

    pthread_mutex_lock(&w->lock);
    if (error != 0 && w->failed == 0) w->failed = error;
    if (w->done_tail) w->done_tail->next = group;
    else w->done_head = group;
    w->done_tail = last;
    uv_async_send(&w->async);
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

static void free_batch(napi_env env, batch_t *b) {
  if (b->data_ref) napi_delete_reference(env, b->data_ref);
  if (b->replies_ref) napi_delete_reference(env, b->replies_ref);
  if (b->done_ref) napi_delete_reference(env, b->done_ref);
  free(b->reply_iov);
  free(b->reply_meta);
  free(b->reply_errno);
  free(b);
}

/* On the loop: done(errno, syncMicros (0 unless first of its group), waitMicros, replyErrnos: number[] | undefined)
 * per batch, in submission order; the microtasks run once after all of them. */
static void on_async(uv_async_t *handle) {
  writer_t *w = handle->data;
  pthread_mutex_lock(&w->lock);
  batch_t *b = w->done_head;
  w->done_head = w->done_tail = NULL;
  pthread_mutex_unlock(&w->lock);
  if (b == NULL) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  napi_callback_scope callback_scope;
  napi_value resource;
  int scoped = napi_open_handle_scope(env, &scope) == napi_ok;
  int in_callback = scoped && napi_create_object(env, &resource) == napi_ok &&
                    napi_open_callback_scope(env, resource, w->async_context, &callback_scope) == napi_ok;
  while (b != NULL) {
    batch_t *next = b->next;
    w->outstanding--;
    napi_value done, global, argv[4], result;
    if (scoped && napi_get_reference_value(env, b->done_ref, &done) == napi_ok && napi_get_global(env, &global) == napi_ok) {
      napi_create_int32(env, b->error, &argv[0]);
      napi_create_double(env, b->first_of_group ? b->sync_us : 0, &argv[1]);
      napi_create_double(env, b->done_us - b->submitted_us, &argv[2]);
      if (b->count > 0 && b->error == 0) {
        napi_create_array_with_length(env, b->count, &argv[3]);
        for (uint32_t i = 0; i < b->count; i++) {
          napi_value code;
          napi_create_int32(env, b->reply_errno[i], &code);
          napi_set_element(env, argv[3], i, code);
        }
      } else {
        napi_get_undefined(env, &argv[3]);
      }
      if (napi_call_function(env, global, done, 4, argv, &result) == napi_pending_exception) report_exception(env);
    }
    free_batch(env, b);
    b = next;
  }
  if (w->outstanding == 0) uv_unref((uv_handle_t *)&w->async); /* an idle writer does not keep the process alive */
  if (in_callback) napi_close_callback_scope(env, callback_scope); /* runs the microtasks: the commits' promises */
  if (scoped) napi_close_handle_scope(env, scope);
}

static void release(writer_t *w) {
  if (--w->owners > 0) return;
  pthread_mutex_destroy(&w->lock);
  pthread_cond_destroy(&w->wake);
  free(w);
}

static void on_closed(uv_handle_t *handle) {
  release(handle->data);
}

/* The JS handle was collected. A writer never closed (its store was dropped without close()) keeps its thread. */
static void on_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  writer_t *w = data;
  if (w->closed) release(w);
}

static writer_t *writer_of(napi_env env, napi_value value) {
  writer_t *w = NULL;
  if (napi_get_value_external(env, value, (void **)&w) != napi_ok || w == NULL || w->closed) return NULL;
  return w;
}

/* journalWriterOpen(fd) -> handle: starts the thread that writes to fd (the journal, opened for appending). */
static napi_value writer_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0)
    return throw_type(env, "expected (fd: number)");
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return throw_type(env, "no event loop");
  writer_t *w = calloc(1, sizeof *w);
  if (w == NULL) return throw_errno(env, "calloc", "journal writer", ENOMEM);
  w->env = env;
  w->fd = fd;
  w->owners = 2;
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->wake, NULL);
  int rc = uv_async_init(loop, &w->async, on_async);
  if (rc != 0) {
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w);
    return throw_errno(env, "uv_async_init", "journal writer", -rc);
  }
  w->async.data = w;
  uv_unref((uv_handle_t *)&w->async);
  rc = pthread_create(&w->thread, NULL, writer_main, w);
  if (rc != 0) {
    w->closed = 1;
    w->owners = 1;
    uv_close((uv_handle_t *)&w->async, on_closed);
    return throw_errno(env, "pthread_create", "journal writer", rc);
  }
  napi_value resource_name, handle;
  napi_create_string_utf8(env, "natd:journal-writer", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, NULL, resource_name, &w->async_context);
  napi_create_external(env, w, on_finalize, NULL, &handle);
  return handle;
}

/* journalWriterSubmit(handle, data: Buffer, replies: Buffer[] | undefined, meta: Uint32Array | undefined (fd, IPv4
 * address, port per reply), done). Returns at once; done is called on the loop when the batch is durable and its
 * replies sent, or failed. The Buffers are kept alive until then and must not change. */
static napi_value writer_submit(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  void *data = NULL, *meta = NULL;
  size_t length = 0, meta_len = 0;
  uint32_t count = 0;
  napi_valuetype replies_type, done_type;
  napi_typedarray_type meta_type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) goto bad;
  writer_t *w = writer_of(env, argv[0]);
  if (w == NULL || napi_get_buffer_info(env, argv[1], &data, &length) != napi_ok ||
      napi_typeof(env, argv[2], &replies_type) != napi_ok || napi_typeof(env, argv[4], &done_type) != napi_ok ||
      done_type != napi_function)
    goto bad;
  if (replies_type != napi_undefined) {
    bool is_array = false;
    if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array ||
        napi_get_array_length(env, argv[2], &count) != napi_ok ||
        napi_get_typedarray_info(env, argv[3], &meta_type, &meta_len, &meta, NULL, NULL) != napi_ok ||
        meta_type != napi_uint32_array || meta_len < (size_t)count * 3)
      goto bad;
  }
  batch_t *b = calloc(1, sizeof *b);
  if (b == NULL) return throw_errno(env, "calloc", "journal writer", ENOMEM);
  b->data = data;
  b->length = length;
  b->count = count;
  if (count > 0) {
    b->reply_iov = calloc(count, sizeof *b->reply_iov);
    b->reply_meta = malloc((size_t)count * 3 * sizeof *b->reply_meta);
    b->reply_errno = calloc(count, sizeof *b->reply_errno);
    if (b->reply_iov == NULL || b->reply_meta == NULL || b->reply_errno == NULL) {
      free_batch(env, b);
      return throw_errno(env, "calloc", "journal writer", ENOMEM);
    }
    memcpy(b->reply_meta, meta, (size_t)count * 3 * sizeof *b->reply_meta);
    for (uint32_t i = 0; i < count; i++) {
      napi_value element;
      void *bytes = NULL;
      size_t len = 0;
      uint32_t port = b->reply_meta[3 * i + 2];
      if (napi_get_element(env, argv[2], i, &element) != napi_ok || napi_get_buffer_info(env, element, &bytes, &len) != napi_ok ||
          port < 1 || port > 65535) {
        free_batch(env, b);
        goto bad;
      }
      b->reply_iov[i].iov_base = bytes;
      b->reply_iov[i].iov_len = len;
    }
  }
  /* the Buffers stay alive (and unmoved: their stores are off the V8 heap) until done is called */
  if (napi_create_reference(env, argv[1], 1, &b->data_ref) != napi_ok ||
      (count > 0 && napi_create_reference(env, argv[2], 1, &b->replies_ref) != napi_ok) ||
      napi_create_reference(env, argv[4], 1, &b->done_ref) != napi_ok) {
    free_batch(env, b);
    return throw_errno(env, "napi_create_reference", "journal writer", ENOMEM);
  }
  b->submitted_us = now_us();
  if (w->outstanding++ == 0) uv_ref((uv_handle_t *)&w->async);
  pthread_mutex_lock(&w->lock);
  if (w->queue_tail) w->queue_tail->next = b;
  else w->queue_head = b;
  w->queue_tail = b;
  pthread_cond_signal(&w->wake);
  pthread_mutex_unlock(&w->lock);
  return NULL;
bad:
  return throw_type(env, "expected (writer, data: Buffer, replies: Buffer[] | undefined, meta: Uint32Array | undefined, done: function), ports 1-65535");
}

/* journalWriterReset(handle, fd): the file to append to from now on (compaction replaced it), and the end of a
 * failure (JS rolled the file back). Only while nothing is outstanding. */
static napi_value writer_reset(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd = -1;
  writer_t *w;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || (w = writer_of(env, argv[0])) == NULL ||
      napi_get_value_int32(env, argv[1], &fd) != napi_ok || fd < 0)
    return throw_type(env, "expected (writer, fd: number)");
  if (w->outstanding != 0) return throw_type(env, "journal writer reset while batches are outstanding");
  pthread_mutex_lock(&w->lock);
  w->fd = fd;
  w->failed = 0;
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

/* journalWriterClose(handle): stops the thread once its queue is empty. Only while nothing is outstanding (JS waits
 * for every done first); the fd stays open (it is JS's). Idempotent. */
static napi_value writer_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  writer_t *w = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_external(env, argv[0], (void **)&w) != napi_ok || w == NULL)
    return throw_type(env, "expected (writer)");
  if (w->closed) return NULL;
  if (w->outstanding != 0) return throw_type(env, "journal writer closed while batches are outstanding");
  w->closed = 1;
  pthread_mutex_lock(&w->lock);
  w->stopping = 1;
  pthread_cond_signal(&w->wake);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL);
  napi_async_destroy(env, w->async_context);
  uv_close((uv_handle_t *)&w->async, on_closed);
  return NULL;
}

void register_journal_writer(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"journalWriterOpen", NULL, writer_open, NULL, NULL, NULL, napi_default, NULL},
    {"journalWriterSubmit", NULL, writer_submit, NULL, NULL, NULL, napi_default, NULL},
    {"journalWriterReset", NULL, writer_reset, NULL, NULL, NULL, napi_default, NULL},
    {"journalWriterClose", NULL, writer_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
