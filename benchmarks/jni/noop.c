/* The JNI baseline of the downcall benchmark: an empty native method. */
#include <jni.h>

JNIEXPORT jint JNICALL Java_dev_sekit_bench_DowncallBench_jniNoop(JNIEnv* env, jclass cls, jint x) {
  (void)env;
  (void)cls;
  return x;
}
