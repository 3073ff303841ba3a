// Test-only stand-in for android.system.SystemCleaner (see Build.kt); never reached on the JVM.
package android.system

object SystemCleaner {
    @JvmStatic fun cleaner(): java.lang.ref.Cleaner = java.lang.ref.Cleaner.create()
}
