/* test_capi.c: exercises the whittle C ABI (include/whittle.h) from C.
 *
 * Usage: test_capi TINY.onnx DEMO.onnx DEMO_EXPECTED.f32
 *   TINY.onnx: y = relu(x @ W + b), x: f32[batch, 3], W = [[1,0],[0,1],[1,-1]], b = [0.5,-0.5]
 *   DEMO.onnx: the whittle demo encoder; DEMO_EXPECTED.f32: its output on the demo inputs
 *   (raw little-endian f32, 1*16*32 values), computed by the reference evaluator.
 * Prints one line per failed check and "ALL OK" at the end if every check passed;
 * exits 0 only then. Run by capi/tests/c_program.rs.
 */
#include "whittle.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks = 0;
static int failures = 0;

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        checks++;                                                         \
        if (!(cond)) {                                                    \
            failures++;                                                   \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);          \
            fprintf(stderr, __VA_ARGS__);                                 \
            fprintf(stderr, "\n");                                        \
        }                                                                 \
    } while (0)

#define EXPECT(call, code)                                                       \
    do {                                                                         \
        int s_ = (call);                                                         \
        CHECK(s_ == (code), "%s returned %d, expected %d (last error: %s)", #call, \
              s_, (code), whittle_last_error());                                 \
    } while (0)

static const float X[6] = {1, 2, 3, -1, 0, 1};
static const float Y[4] = {4.5f, 0, 0.5f, 0};

/* Runs the tiny model on the first `batch` rows of X and checks y. */
static void check_tiny_run(whittle_model* m, int64_t batch) {
    int64_t shape[2] = {batch, 3};
    whittle_tensor x = {WHITTLE_DTYPE_F32, 2, shape, X};
    const char* names[1] = {"x"};
    whittle_outputs* out = NULL;
    EXPECT(whittle_model_run(m, 1, names, &x, &out), WHITTLE_OK);
    if (out == NULL) return;
    size_t count = 0, rank = 0, nbytes = 0;
    const char* name = NULL;
    int dtype = 0;
    const int64_t* dims = NULL;
    const void* data = NULL;
    EXPECT(whittle_outputs_count(out, &count), WHITTLE_OK);
    CHECK(count == 1, "count %zu", count);
    EXPECT(whittle_outputs_name(out, 0, &name), WHITTLE_OK);
    CHECK(name && strcmp(name, "y") == 0, "name %s", name ? name : "(null)");
    EXPECT(whittle_outputs_dtype(out, 0, &dtype), WHITTLE_OK);
    CHECK(dtype == WHITTLE_DTYPE_F32, "dtype %d", dtype);
    EXPECT(whittle_outputs_rank(out, 0, &rank), WHITTLE_OK);
    CHECK(rank == 2, "rank %zu", rank);
    EXPECT(whittle_outputs_shape(out, 0, &dims), WHITTLE_OK);
    CHECK(dims && dims[0] == batch && dims[1] == 2, "bad dims");
    EXPECT(whittle_outputs_data(out, 0, &data, &nbytes), WHITTLE_OK);
    CHECK(nbytes == (size_t)batch * 2 * sizeof(float), "nbytes %zu", nbytes);
    if (data && nbytes == (size_t)batch * 2 * sizeof(float)) {
        const float* y = data;
        for (int64_t i = 0; i < batch * 2; i++)
            CHECK(fabsf(y[i] - Y[i]) < 1e-6f, "y[%lld] = %g, expected %g", (long long)i, y[i], Y[i]);
    }
    /* Accessor errors on a live outputs object. */
    EXPECT(whittle_outputs_name(out, 1, &name), WHITTLE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(whittle_last_error(), "out of range") != NULL, "msg: %s", whittle_last_error());
    EXPECT(whittle_outputs_data(out, 0, NULL, NULL), WHITTLE_ERR_NULL_POINTER);
    EXPECT(whittle_outputs_free(out), WHITTLE_OK);
}

static void* thread_main(void* arg) {
    for (int i = 0; i < 20; i++) check_tiny_run((whittle_model*)arg, 2);
    return NULL;
}

static void test_metadata(whittle_model* m) {
    size_t n = 0, rank = 0;
    const char* name = NULL;
    int dtype = 0;
    const int64_t* dims = NULL;
    EXPECT(whittle_model_num_inputs(m, &n), WHITTLE_OK);
    CHECK(n == 1, "num_inputs %zu", n);
    EXPECT(whittle_model_num_outputs(m, &n), WHITTLE_OK);
    CHECK(n == 1, "num_outputs %zu", n);
    EXPECT(whittle_model_input_name(m, 0, &name), WHITTLE_OK);
    CHECK(name && strcmp(name, "x") == 0, "input name");
    EXPECT(whittle_model_output_name(m, 0, &name), WHITTLE_OK);
    CHECK(name && strcmp(name, "y") == 0, "output name");
    EXPECT(whittle_model_input_dtype(m, 0, &dtype), WHITTLE_OK);
    CHECK(dtype == WHITTLE_DTYPE_F32, "input dtype %d", dtype);
    EXPECT(whittle_model_input_shape(m, 0, &dims, &rank), WHITTLE_OK);
    CHECK(rank == 2 && dims && dims[0] == -1 && dims[1] == 3, "input shape");
    EXPECT(whittle_model_input_name(m, 1, &name), WHITTLE_ERR_INVALID_ARGUMENT);
    EXPECT(whittle_model_output_name(m, 7, &name), WHITTLE_ERR_INVALID_ARGUMENT);
    EXPECT(whittle_model_num_inputs(m, NULL), WHITTLE_ERR_NULL_POINTER);
    EXPECT(whittle_model_num_inputs(NULL, &n), WHITTLE_ERR_NULL_POINTER);
    EXPECT(whittle_model_input_shape(m, 0, NULL, &rank), WHITTLE_ERR_NULL_POINTER);
}

static void test_run_errors(whittle_model* m) {
    float big[8] = {0};
    int64_t i64data[6] = {0};
    int64_t s23[2] = {2, 3}, s24[2] = {2, 4}, s6[1] = {6}, sneg[2] = {-2, 3};
    const char* x_name[1] = {"x"};
    const char* z_name[1] = {"z"};
    const char* two_x[2] = {"x", "x"};
    const char* null_name[1] = {NULL};
    whittle_outputs* out = NULL;

    whittle_tensor wrong_shape = {WHITTLE_DTYPE_F32, 2, s24, big};
    EXPECT(whittle_model_run(m, 1, x_name, &wrong_shape, &out), WHITTLE_ERR_SHAPE_MISMATCH);
    CHECK(strstr(whittle_last_error(), "'x'") != NULL, "msg: %s", whittle_last_error());
    CHECK(out == NULL, "out written on failure");
    whittle_tensor wrong_rank = {WHITTLE_DTYPE_F32, 1, s6, big};
    EXPECT(whittle_model_run(m, 1, x_name, &wrong_rank, &out), WHITTLE_ERR_SHAPE_MISMATCH);
    whittle_tensor wrong_dtype = {WHITTLE_DTYPE_I64, 2, s23, i64data};
    EXPECT(whittle_model_run(m, 1, x_name, &wrong_dtype, &out), WHITTLE_ERR_DTYPE_MISMATCH);
    CHECK(strstr(whittle_last_error(), "f32") != NULL, "msg: %s", whittle_last_error());
    whittle_tensor good = {WHITTLE_DTYPE_F32, 2, s23, X};
    EXPECT(whittle_model_run(m, 1, z_name, &good, &out), WHITTLE_ERR_INPUT_NAME);
    CHECK(strstr(whittle_last_error(), "'z'") != NULL, "msg: %s", whittle_last_error());
    EXPECT(whittle_model_run(m, 0, NULL, NULL, &out), WHITTLE_ERR_INPUT_NAME);
    whittle_tensor twice[2] = {good, good};
    EXPECT(whittle_model_run(m, 2, two_x, twice, &out), WHITTLE_ERR_INPUT_NAME);
    whittle_tensor negative = {WHITTLE_DTYPE_F32, 2, sneg, X};
    EXPECT(whittle_model_run(m, 1, x_name, &negative, &out), WHITTLE_ERR_INVALID_ARGUMENT);
    whittle_tensor bad_code = {99, 2, s23, X};
    EXPECT(whittle_model_run(m, 1, x_name, &bad_code, &out), WHITTLE_ERR_INVALID_ARGUMENT);
    whittle_tensor huge_rank = {WHITTLE_DTYPE_F32, 1000, s23, X};
    EXPECT(whittle_model_run(m, 1, x_name, &huge_rank, &out), WHITTLE_ERR_INVALID_ARGUMENT);
    whittle_tensor null_shape = {WHITTLE_DTYPE_F32, 2, NULL, X};
    EXPECT(whittle_model_run(m, 1, x_name, &null_shape, &out), WHITTLE_ERR_NULL_POINTER);
    whittle_tensor null_data = {WHITTLE_DTYPE_F32, 2, s23, NULL};
    EXPECT(whittle_model_run(m, 1, x_name, &null_data, &out), WHITTLE_ERR_NULL_POINTER);
    EXPECT(whittle_model_run(m, 1, null_name, &good, &out), WHITTLE_ERR_NULL_POINTER);
    EXPECT(whittle_model_run(m, 1, NULL, &good, &out), WHITTLE_ERR_NULL_POINTER);
    EXPECT(whittle_model_run(m, 1, x_name, NULL, &out), WHITTLE_ERR_NULL_POINTER);
    EXPECT(whittle_model_run(m, 1, x_name, &good, NULL), WHITTLE_ERR_NULL_POINTER);
    EXPECT(whittle_model_run(NULL, 1, x_name, &good, &out), WHITTLE_ERR_NULL_POINTER);
    CHECK(out == NULL, "out written on failure");
    /* The model still works after all of that. */
    check_tiny_run(m, 2);
    CHECK(strcmp(whittle_last_error(), "") == 0, "last error after success: %s", whittle_last_error());
}

static void test_load_errors(const char* dir_of_tiny) {
    whittle_model* m = NULL;
    EXPECT(whittle_model_load_file("/nonexistent/whittle/model.onnx", &m), WHITTLE_ERR_LOAD);
    CHECK(strstr(whittle_last_error(), "/nonexistent/whittle/model.onnx") != NULL, "msg: %s",
          whittle_last_error());
    CHECK(m == NULL, "out written on failure");
    const uint8_t garbage[16] = {0xff, 0xff, 0xff, 0xff, 0x12, 0x34, 0x56, 0x78,
                                 0x9a, 0xbc, 0xde, 0xf0, 0x00, 0x01, 0x02, 0x03};
    EXPECT(whittle_model_load_bytes(garbage, sizeof garbage, &m), WHITTLE_ERR_LOAD);
    EXPECT(whittle_model_load_bytes(garbage, 0, &m), WHITTLE_ERR_LOAD);
    EXPECT(whittle_model_load_file(dir_of_tiny, &m), WHITTLE_ERR_LOAD); /* a directory */
    EXPECT(whittle_model_load_file(NULL, &m), WHITTLE_ERR_NULL_POINTER);
    EXPECT(whittle_model_load_file("x.onnx", NULL), WHITTLE_ERR_NULL_POINTER);
    EXPECT(whittle_model_load_bytes(NULL, 4, &m), WHITTLE_ERR_NULL_POINTER);
    CHECK(m == NULL, "out written on failure");
    EXPECT(whittle_model_free(NULL), WHITTLE_OK);
    EXPECT(whittle_outputs_free(NULL), WHITTLE_OK);
    size_t n = 0;
    EXPECT(whittle_outputs_count(NULL, &n), WHITTLE_ERR_NULL_POINTER);
    EXPECT(whittle_model_set_threads(NULL, 1), WHITTLE_ERR_NULL_POINTER);
    EXPECT(whittle_model_compile(NULL), WHITTLE_ERR_NULL_POINTER);
}

static uint8_t* read_file(const char* path, size_t* len) {
    FILE* f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t* buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void test_demo(const char* demo_path, const char* expected_path) {
    size_t len = 0;
    float* expected = (float*)read_file(expected_path, &len);
    CHECK(expected && len == 16 * 32 * sizeof(float), "cannot read %s", expected_path);
    if (!expected || len != 16 * 32 * sizeof(float)) return;
    whittle_model* m = NULL;
    EXPECT(whittle_model_load_file(demo_path, &m), WHITTLE_OK);
    if (!m) return;
    EXPECT(whittle_model_set_backend(m, "reference"), WHITTLE_OK);
    int64_t ids[16], mask[16], shape[2] = {1, 16};
    for (int i = 0; i < 16; i++) {
        ids[i] = i < 12 ? (i * 37 + 11) % 100 : 0;
        mask[i] = i < 12;
    }
    /* Inputs in the opposite order of the model's: names decide. */
    const char* names[2] = {"attention_mask", "input_ids"};
    whittle_tensor ins[2] = {{WHITTLE_DTYPE_I64, 2, shape, mask}, {WHITTLE_DTYPE_I64, 2, shape, ids}};
    whittle_outputs* out = NULL;
    EXPECT(whittle_model_run(m, 2, names, ins, &out), WHITTLE_OK);
    const void* data = NULL;
    size_t nbytes = 0;
    if (out) {
        EXPECT(whittle_outputs_data(out, 0, &data, &nbytes), WHITTLE_OK);
        CHECK(nbytes == len, "demo nbytes %zu", nbytes);
        if (data && nbytes == len) {
            const float* y = data;
            float worst = 0;
            for (int i = 0; i < 16 * 32; i++) {
                float d = fabsf(y[i] - expected[i]);
                if (d > worst) worst = d;
            }
            CHECK(worst < 1e-4f, "demo output differs by %g", worst);
        }
        EXPECT(whittle_outputs_free(out), WHITTLE_OK);
    }
    EXPECT(whittle_model_free(m), WHITTLE_OK);
    free(expected);
}

int main(int argc, char** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s TINY.onnx DEMO.onnx DEMO_EXPECTED.f32\n", argv[0]);
        return 2;
    }
    const char* version = whittle_version();
    CHECK(version && strlen(version) > 0, "empty version");

    /* Load from a file, CPU backend with 2 threads. */
    whittle_model* m = NULL;
    EXPECT(whittle_model_load_file(argv[1], &m), WHITTLE_OK);
    if (!m) {
        fprintf(stderr, "cannot continue without the tiny model\n");
        return 1;
    }
    test_metadata(m);
    EXPECT(whittle_model_set_threads(m, 2), WHITTLE_OK);
    EXPECT(whittle_model_set_threads(m, -1), WHITTLE_ERR_INVALID_ARGUMENT);
    EXPECT(whittle_model_set_backend(m, "gpu"), WHITTLE_ERR_INVALID_ARGUMENT);
    EXPECT(whittle_model_set_backend(m, NULL), WHITTLE_ERR_NULL_POINTER);
    EXPECT(whittle_model_set_optimize(m, 2), WHITTLE_ERR_INVALID_ARGUMENT);
    EXPECT(whittle_model_compile(m), WHITTLE_OK);
    check_tiny_run(m, 2);
    check_tiny_run(m, 1); /* symbolic batch: another shape */
    test_run_errors(m);

    /* A memory budget below what the model needs: a clean failure naming the limit, then
     * the default budget again. */
    {
        const int64_t s23[2] = {2, 3};
        const char* names[1] = {"x"};
        whittle_tensor x = {WHITTLE_DTYPE_F32, 2, s23, X};
        whittle_outputs* out = NULL;
        whittle_model* small = NULL;
        EXPECT(whittle_model_load_file(argv[1], &small), WHITTLE_OK);
        EXPECT(whittle_set_max_memory(8), WHITTLE_OK);
        int st = small ? whittle_model_run(small, 1, names, &x, &out) : -1;
        CHECK(st == WHITTLE_ERR_COMPILE || st == WHITTLE_ERR_RUN, "over budget: status %d", st);
        CHECK(strstr(whittle_last_error(), "memory limit") != NULL, "msg: %s", whittle_last_error());
        CHECK(out == NULL, "out written on failure");
        EXPECT(whittle_set_max_memory(0), WHITTLE_OK);
        if (small) EXPECT(whittle_model_run(small, 1, names, &x, &out), WHITTLE_OK);
        if (out) EXPECT(whittle_outputs_free(out), WHITTLE_OK);
        EXPECT(whittle_model_free(small), WHITTLE_OK);
    }

    /* Several threads running the same model at once. */
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) pthread_create(&threads[i], NULL, thread_main, m);
    for (int i = 0; i < 4; i++) pthread_join(threads[i], NULL);
    EXPECT(whittle_model_free(m), WHITTLE_OK);

    /* Load from memory, reference backend, no optimization. */
    size_t len = 0;
    uint8_t* bytes = read_file(argv[1], &len);
    CHECK(bytes != NULL, "cannot read %s", argv[1]);
    m = NULL;
    if (bytes) EXPECT(whittle_model_load_bytes(bytes, len, &m), WHITTLE_OK);
    free(bytes); /* the model keeps its own copy */
    if (m) {
        EXPECT(whittle_model_set_backend(m, "reference"), WHITTLE_OK);
        EXPECT(whittle_model_set_optimize(m, 0), WHITTLE_OK);
        check_tiny_run(m, 2);
        test_run_errors(m);
        EXPECT(whittle_model_free(m), WHITTLE_OK);
    }

    /* The directory of the tiny model, to try loading a directory. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", argv[1]);
    char* slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    test_load_errors(dir);
    test_demo(argv[2], argv[3]);

    printf("test_capi: %d checks, %d failures\n", checks, failures);
    if (failures == 0) printf("ALL OK\n");
    return failures == 0 ? 0 : 1;
}
