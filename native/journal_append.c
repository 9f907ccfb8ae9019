/*
 * issue 18: the lease journal's group commit as one thread-pool job. journalAppend(fd, data, done) writes all of
 * `data` at the end of the journal (the fd is opened O_APPEND) and fdatasyncs it on one libuv worker thread, then
 * calls done(errno) once on the loop (0: every byte is on disk). One hand-off to the pool and one back per group
 * commit, and no write on the event loop: with fs.writeSync + fs.fdatasync the loop did the write itself and the
 * sync was a second request object with its own callback wrapper and promise.
 *
 * The crash guarantee is the journal's (src/dhcp/lease-store.ts): the caller acknowledges nothing until done(0); a
 * crash between write and sync leaves at most a torn last line, which recovery cuts off. On an error the caller
 * rolls the file back to its last known size (the job does not know which bytes of a short write reached the file).
 */
#include "natd_native.h"
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
  napi_async_work work;
  napi_ref data_ref, done_ref;
  int fd;
  const unsigned char *data;
  size_t length;
  int error; /* errno of the first failure, 0 when written and synced */
} append_job_t;

/* On a libuv worker thread: no N-API calls here. */
static void append_execute(napi_env env, void *arg) {
  (void)env;
  append_job_t *job = arg;
  size_t written = 0;
  while (written < job->length) {
    ssize_t n = write(job->fd, job->data + written, job->length - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      job->error = errno;
      return;
    }
    if (n == 0) {
      job->error = EIO; /* a regular file that takes nothing: treat as an I/O error rather than spin */
      return;
    }
    written += (size_t)n;
  }
  int rc;
  do rc = fdatasync(job->fd);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) job->error = errno;
}

/* On the loop, inside a callback scope (Node runs the microtasks after it). */
static void append_complete(napi_env env, napi_status status, void *arg) {
  append_job_t *job = arg;
  int error = status == napi_ok ? job->error : ECANCELED;
  napi_value done, global, code, result;
  if (napi_get_reference_value(env, job->done_ref, &done) == napi_ok && napi_get_global(env, &global) == napi_ok &&
      napi_create_int32(env, error, &code) == napi_ok) {
    if (napi_call_function(env, global, done, 1, &code, &result) == napi_pending_exception) report_exception(env);
  }
  napi_delete_reference(env, job->data_ref);
  napi_delete_reference(env, job->done_ref);
  napi_delete_async_work(env, job->work);
  free(job);
}

/* journalAppend(fd, data: Buffer, done(errno: number)): undefined. Throws only on bad arguments. */
static napi_value journal_append(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd = -1;
  void *data = NULL;
  size_t length = 0;
  napi_valuetype done_type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_get_buffer_info(env, argv[1], &data, &length) != napi_ok ||
      napi_typeof(env, argv[2], &done_type) != napi_ok || done_type != napi_function)
    return throw_type(env, "expected (fd: number, data: Buffer, done: function)");
  append_job_t *job = calloc(1, sizeof *job);
  if (job == NULL) return throw_errno(env, "calloc", "journal append", ENOMEM);
  job->fd = fd;
  job->data = data;
  job->length = length;
  napi_value resource_name;
  napi_create_string_utf8(env, "natd:journal-append", NAPI_AUTO_LENGTH, &resource_name);
  /* the Buffer stays alive (and unmoved: its store is off the V8 heap) until the job completes */
  if (napi_create_reference(env, argv[1], 1, &job->data_ref) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &job->done_ref) != napi_ok ||
      napi_create_async_work(env, NULL, resource_name, append_execute, append_complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    if (job->work) napi_delete_async_work(env, job->work);
    if (job->data_ref) napi_delete_reference(env, job->data_ref);
    if (job->done_ref) napi_delete_reference(env, job->done_ref);
    free(job);
    return throw_errno(env, "napi_queue_async_work", "journal append", EAGAIN);
  }
  return NULL;
}

void register_journal_append(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"journalAppend", NULL, journal_append, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
