// Test-only stand-in for android.os.Build, so the bindings generated with `android_cleaner = true`
// (exactly what ships to Android) compile and run on a plain JVM. SDK_INT 0 selects the JNA cleaner.
package android.os

object Build {
    object VERSION {
        @JvmField val SDK_INT: Int = 0
    }

    object VERSION_CODES {
        const val UPSIDE_DOWN_CAKE: Int = 34
    }
}
