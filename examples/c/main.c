/* Example: run a model compiled ahead of time by `whittle compile --name model` from plain C.
 *
 *   whittle compile model.onnx -o model.o --header model.h --name model --input-shape x=1x16
 *   cc -O2 -I. main.c model.o -L<dir of libwhittle_rt.a> -lwhittle_rt -lm -lpthread -ldl -static-libgcc -Wl,--gc-sections -o app
 *   ./app IN0.bin [IN1.bin ...] OUT0.bin [OUT1.bin ...] [timed-iterations]
 *
 * One raw little-endian file per input (exactly MODEL_INPUT<i>_BYTES bytes, in the header's
 * order) and one per output. Works for any model. It also checks that the entry point
 * refuses a workspace that is too small and NULL buffers. Exit status 0 means success. */
#define _POSIX_C_SOURCE 199309L
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int fail(const char* what, int code) {
    const char* why = whittle_rt_last_error();
    fprintf(stderr, "FAIL: %s (status %d)%s%s\n", what, code, why && *why ? ": " : "", why ? why : "");
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
    enum { NI = MODEL_NUM_INPUTS, NO = MODEL_NUM_OUTPUTS };
    static const size_t in_bytes[NI] = MODEL_INPUT_BYTES_LIST;
    static const size_t out_bytes[NO] = MODEL_OUTPUT_BYTES_LIST;
    if (argc < 1 + NI + NO) {
        fprintf(stderr, "usage: %s IN0.bin ... (%d inputs) OUT0.bin ... (%d outputs) [ITERS]\n",
                argv[0], NI, NO);
        return 2;
    }
    const void* ins[NI];
    void* outs[NO];
    for (int i = 0; i < NI; i++) {
        void* buf = malloc(in_bytes[i] ? in_bytes[i] : 1);
        if (!buf) return fail("out of memory", 0);
        FILE* f = fopen(argv[1 + i], "rb");
        if (!f || fread(buf, 1, in_bytes[i], f) != in_bytes[i]) return fail("read input", i);
        fclose(f);
        ins[i] = buf;
    }
    for (int o = 0; o < NO; o++) {
        outs[o] = malloc(out_bytes[o] ? out_bytes[o] : 1);
        if (!outs[o]) return fail("out of memory", 0);
    }
    void* ws = malloc(MODEL_WORKSPACE_SIZE + 1);
    if (!ws) return fail("out of memory", 0);

    int s;
    if (MODEL_WORKSPACE_SIZE > 0) {
        s = model_run(ins, outs, ws, MODEL_WORKSPACE_SIZE - 1);
        if (s != MODEL_ERR_WORKSPACE_TOO_SMALL) return fail("a too-small workspace was accepted", s);
    }
    const void* null_ins[NI];
    for (int i = 0; i < NI; i++) null_ins[i] = i == 0 ? NULL : ins[i];
    s = model_run(null_ins, outs, ws, MODEL_WORKSPACE_SIZE);
    if (s != MODEL_ERR_NULL_POINTER) return fail("a NULL input was accepted", s);
    if (!*whittle_rt_last_error()) return fail("a refused call left no message", s);

    s = model_run(ins, outs, ws, MODEL_WORKSPACE_SIZE);
    if (s != MODEL_OK) return fail("model_run", s);

    for (int o = 0; o < NO; o++) {
        FILE* f = fopen(argv[1 + NI + o], "wb");
        if (!f || fwrite(outs[o], 1, out_bytes[o], f) != out_bytes[o]) return fail("write output", o);
        fclose(f);
    }

    int iters = argc > 1 + NI + NO ? atoi(argv[1 + NI + NO]) : 0;
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
    printf("ok: %d input(s), %d output(s), whittle %s, model hash %016llx, workspace %zu bytes\n",
           NI, NO, MODEL_WHITTLE_VERSION, (unsigned long long)MODEL_MODEL_HASH,
           (size_t)MODEL_WORKSPACE_SIZE);
    for (int i = 0; i < NI; i++) free((void*)ins[i]);
    for (int o = 0; o < NO; o++) free(outs[o]);
    free(ws);
    return 0;
}
