/* whittle.h: the C ABI of whittle, an optimizing compiler for ONNX models.
 *
 * Link:  cc app.c -Ipath/to/capi/include path/to/libwhittle_capi.a -lm -lpthread -ldl
 *   (or -lwhittle_capi against libwhittle_capi.so).
 *
 * Usage: whittle_model_load_file -> (optional) whittle_model_set_backend / _set_threads /
 * _set_optimize -> whittle_model_run (compiles on first use; or whittle_model_compile)
 * -> whittle_outputs_* accessors -> whittle_outputs_free -> whittle_model_free.
 *
 * Conventions:
 * - Every function except whittle_last_error and whittle_version returns an int status:
 *   WHITTLE_OK (0) or one of the WHITTLE_ERR_* codes; results come back through out
 *   pointers, which are written only on success.
 * - Every pointer argument is checked: a NULL where one is required is
 *   WHITTLE_ERR_NULL_POINTER. Freeing NULL is a no-op.
 * - No function unwinds or aborts on bad input; an internal error is WHITTLE_ERR_PANIC.
 * - After a failure, whittle_last_error() describes it (per thread).
 * - A model may be run from several threads at once. Changing its settings
 *   (set_backend / set_threads / set_optimize) while another thread runs it is safe; runs
 *   already started keep the old compilation.
 * - Tensor data is row-major, in the host's (little-endian) byte order, and need not be
 *   aligned. Input data is copied; the caller keeps ownership.
 */
#ifndef WHITTLE_H
#define WHITTLE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. */
#define WHITTLE_OK 0
#define WHITTLE_ERR_NULL_POINTER 1     /* a required pointer argument was NULL */
#define WHITTLE_ERR_INVALID_ARGUMENT 2 /* bad index, dtype code, negative dim, non-UTF-8 string, unknown backend */
#define WHITTLE_ERR_LOAD 3             /* the model could not be read or decoded */
#define WHITTLE_ERR_COMPILE 4          /* optimizing or compiling failed (e.g. unsupported op) */
#define WHITTLE_ERR_INPUT_NAME 5       /* unknown input name, or an input missing / given twice */
#define WHITTLE_ERR_SHAPE_MISMATCH 6   /* an input's shape does not match the model */
#define WHITTLE_ERR_DTYPE_MISMATCH 7   /* an input's dtype does not match the model */
#define WHITTLE_ERR_RUN 8              /* the model failed while running */
#define WHITTLE_ERR_PANIC 9            /* internal error, caught at the boundary */

/* Element types: the ONNX TensorProto.DataType codes. */
#define WHITTLE_DTYPE_F32 1
#define WHITTLE_DTYPE_U8 2
#define WHITTLE_DTYPE_I8 3
#define WHITTLE_DTYPE_U16 4
#define WHITTLE_DTYPE_I16 5
#define WHITTLE_DTYPE_I32 6
#define WHITTLE_DTYPE_I64 7
#define WHITTLE_DTYPE_BOOL 9 /* one byte per element, 0 or 1 */
#define WHITTLE_DTYPE_F16 10
#define WHITTLE_DTYPE_F64 11
#define WHITTLE_DTYPE_U32 12
#define WHITTLE_DTYPE_U64 13
#define WHITTLE_DTYPE_BF16 16

/* whittle_model_input_shape reports this rank when the model does not declare one. */
#define WHITTLE_UNKNOWN_RANK ((size_t)-1)

/* A loaded model (opaque). */
typedef struct whittle_model whittle_model;
/* The outputs of one run (opaque). */
typedef struct whittle_outputs whittle_outputs;

/* A borrowed input tensor. */
typedef struct whittle_tensor {
    int dtype;            /* WHITTLE_DTYPE_* */
    size_t rank;          /* number of dims (at most 32); shape may be NULL when 0 */
    const int64_t* shape; /* rank dims, each >= 0 */
    const void* data;     /* product(shape) elements; may be NULL when there are none */
} whittle_tensor;

/* The message of the last failed whittle_* call on this thread, or "" if the last call
 * succeeded. Never NULL; valid until the next whittle_* call on this thread. */
const char* whittle_last_error(void);

/* Sets the memory budget of the whole process: the most bytes one allocation sized by a
 * model or an input may take (tensors, the arena). Over it, loading, compiling or running
 * fails (WHITTLE_ERR_LOAD / _COMPILE / _RUN) with a message naming the node and the bytes.
 * 0 restores the default (the machine's physical memory). Always WHITTLE_OK. */
int whittle_set_max_memory(uint64_t bytes);

/* The library version, e.g. "0.1.0" (a static string). */
const char* whittle_version(void);

/* Loads an ONNX file (external data files are read from its directory). On success
 * *out is a new model, to be freed with whittle_model_free. Errors: WHITTLE_ERR_LOAD. */
int whittle_model_load_file(const char* path, whittle_model** out);

/* Decodes an ONNX model from len bytes at data (copied; external data unsupported).
 * On success *out is a new model. Errors: WHITTLE_ERR_LOAD. */
int whittle_model_load_bytes(const uint8_t* data, size_t len, whittle_model** out);

/* Frees a model (NULL is a no-op). Outputs of earlier runs stay valid. */
int whittle_model_free(whittle_model* model);

/* Sets the worker thread count; 0 lets the backend choose (the default); negative is
 * WHITTLE_ERR_INVALID_ARGUMENT. Takes effect at the next compilation. */
int whittle_model_set_threads(whittle_model* model, int threads);

/* Selects the backend: "cpu" (the default, Cranelift JIT) or "reference" (the slow,
 * complete evaluator). Takes effect at the next compilation. */
int whittle_model_set_backend(whittle_model* model, const char* name);

/* Runs the exact optimization pipeline before compiling: 1 (the default) or 0. */
int whittle_model_set_optimize(whittle_model* model, int enabled);

/* Optimizes and compiles now; otherwise the first whittle_model_run does it.
 * Errors: WHITTLE_ERR_COMPILE. */
int whittle_model_compile(whittle_model* model);

/* The number of model inputs / outputs. */
int whittle_model_num_inputs(const whittle_model* model, size_t* out);
int whittle_model_num_outputs(const whittle_model* model, size_t* out);

/* The name of input / output i (valid while the model lives). An index out of range is
 * WHITTLE_ERR_INVALID_ARGUMENT. */
int whittle_model_input_name(const whittle_model* model, size_t i, const char** out);
int whittle_model_output_name(const whittle_model* model, size_t i, const char** out);

/* The dtype (WHITTLE_DTYPE_*) of input i. */
int whittle_model_input_dtype(const whittle_model* model, size_t i, int* out);

/* The declared shape of input i: *rank dims at *dims (valid while the model lives), -1
 * for a symbolic dim (e.g. batch); *rank is WHITTLE_UNKNOWN_RANK and *dims NULL if the
 * model declares no rank. */
int whittle_model_input_shape(const whittle_model* model, size_t i, const int64_t** dims,
                              size_t* rank);

/* Runs the model on n_inputs tensors named names[0..n_inputs) (every model input exactly
 * once, any order), compiling it first if needed. On success *out holds the outputs in
 * the model's output order, to be freed with whittle_outputs_free.
 * Errors: WHITTLE_ERR_INPUT_NAME, WHITTLE_ERR_SHAPE_MISMATCH, WHITTLE_ERR_DTYPE_MISMATCH,
 * WHITTLE_ERR_INVALID_ARGUMENT (malformed tensor), WHITTLE_ERR_COMPILE, WHITTLE_ERR_RUN. */
int whittle_model_run(whittle_model* model, size_t n_inputs, const char* const* names,
                      const whittle_tensor* inputs, whittle_outputs** out);

/* The number of outputs. */
int whittle_outputs_count(const whittle_outputs* outputs, size_t* out);

/* Output i's name, dtype (WHITTLE_DTYPE_*), rank and dims (rank of them). Pointers are
 * valid until whittle_outputs_free. */
int whittle_outputs_name(const whittle_outputs* outputs, size_t i, const char** out);
int whittle_outputs_dtype(const whittle_outputs* outputs, size_t i, int* out);
int whittle_outputs_rank(const whittle_outputs* outputs, size_t i, size_t* out);
int whittle_outputs_shape(const whittle_outputs* outputs, size_t i, const int64_t** out);

/* Output i's elements (row-major, valid until whittle_outputs_free) and, if nbytes is not
 * NULL, their size in bytes. */
int whittle_outputs_data(const whittle_outputs* outputs, size_t i, const void** out,
                         size_t* nbytes);

/* Frees the outputs of a run (NULL is a no-op). */
int whittle_outputs_free(whittle_outputs* outputs);

#ifdef __cplusplus
}
#endif

#endif /* WHITTLE_H */
