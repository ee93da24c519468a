/* Example: run a model compiled ahead of time by `whittle compile --name model` from plain C.
 *
 *   whittle compile mlp.onnx -o model.o --header model.h --name model
 *   cc -O2 -I. main.c model.o -L<dir of libwhittle_rt.a> -lwhittle_rt -lm -lpthread -ldl -static-libgcc -o app
 *   ./app input.f32 output.f32 [timed-iterations]
 *
 * Works for any model with one input and one output (raw little-endian files of exactly
 * MODEL_INPUT0_BYTES / MODEL_OUTPUT0_BYTES bytes). It also checks that the entry point
 * refuses a workspace that is too small and NULL buffers. Exit status 0 means success. */
#define _POSIX_C_SOURCE 199309L
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if MODEL_NUM_INPUTS != 1 || MODEL_NUM_OUTPUTS != 1
#error "this example handles models with one input and one output"
#endif

static int fail(const char* what, int code) {
    fprintf(stderr, "FAIL: %s (status %d)\n", what, code);
    return 1;
}

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s INPUT.bin OUTPUT.bin [ITERS]\n", argv[0]);
        return 2;
    }
    MODEL_INPUT0_t* in = malloc(MODEL_INPUT0_BYTES);
    MODEL_OUTPUT0_t* out = malloc(MODEL_OUTPUT0_BYTES);
    void* ws = malloc(MODEL_WORKSPACE_SIZE + 1);
    if (!in || !out || !ws) return fail("out of memory", 0);

    FILE* f = fopen(argv[1], "rb");
    if (!f || fread(in, 1, MODEL_INPUT0_BYTES, f) != MODEL_INPUT0_BYTES) return fail("read input", 0);
    fclose(f);

    const void* ins[1] = {in};
    void* outs[1] = {out};
    int s;
    if (MODEL_WORKSPACE_SIZE > 0) {
        s = model_run(ins, outs, ws, MODEL_WORKSPACE_SIZE - 1);
        if (s != MODEL_ERR_WORKSPACE_TOO_SMALL) return fail("a too-small workspace was accepted", s);
    }
    const void* null_ins[1] = {NULL};
    s = model_run(null_ins, outs, ws, MODEL_WORKSPACE_SIZE);
    if (s != MODEL_ERR_NULL_POINTER) return fail("a NULL input was accepted", s);

    s = model_run(ins, outs, ws, MODEL_WORKSPACE_SIZE);
    if (s != MODEL_OK) return fail("model_run", s);

    f = fopen(argv[2], "wb");
    if (!f || fwrite(out, 1, MODEL_OUTPUT0_BYTES, f) != MODEL_OUTPUT0_BYTES) return fail("write output", 0);
    fclose(f);

    int iters = argc > 3 ? atoi(argv[3]) : 0;
    if (iters > 0) {
        double* t = malloc(sizeof(double) * (size_t)iters);
        if (!t) return fail("out of memory", 0);
        for (int i = 0; i < iters; i++) {
            double t0 = now_us();
            s = model_run(ins, outs, ws, MODEL_WORKSPACE_SIZE);
            t[i] = now_us() - t0;
            if (s != MODEL_OK) return fail("model_run (timed)", s);
        }
        qsort(t, (size_t)iters, sizeof(double), cmp_double);
        printf("latency_us p50 %.1f p90 %.1f\n", t[iters / 2], t[(iters * 9) / 10]);
        free(t);
    }
    printf("ok: %s, whittle %s, model hash %016llx, workspace %zu bytes\n", MODEL_INPUT0_NAME,
           MODEL_WHITTLE_VERSION, (unsigned long long)MODEL_MODEL_HASH, (size_t)MODEL_WORKSPACE_SIZE);
    free(in);
    free(out);
    free(ws);
    return 0;
}
