//! Finding the local Spark installation that stands in for every Spark image: the PyPI
//! `pyspark` package (its `bin/`, `jars/` and `python/`), its Python, and Java 17.

use std::path::{Path, PathBuf};

use super::launch::Installation;

/// Why there is no usable local Spark.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    #[error(
        "no local Spark found: give --spark-home (the pyspark package directory), set \
         SPARK_HOME, or put the spark-submit of a `pip install pyspark` on PATH"
    )]
    NotFound,
    #[error("{path} is not a Spark installation: it has no {missing}")]
    NotSpark { path: String, missing: String },
    #[error(
        "no java found: install Java 17 (apt-get install openjdk-17-jre-headless) or set \
         JAVA_HOME"
    )]
    NoJava,
    #[error("no python3 found to run PySpark (set PYSPARK_PYTHON)")]
    NoPython,
}

impl Installation {
    /// The installation at `spark_home`, else at `$SPARK_HOME`, else the `pyspark` package of
    /// the Python next to the `spark-submit` on `PATH`; with `$JAVA_HOME/bin/java` or the
    /// `java` on `PATH`, and `$PYSPARK_PYTHON` or that Python.
    pub fn discover(spark_home: Option<&Path>) -> Result<Installation, InstallError> {
        let submit = on_path("spark-submit");
        let venv_python = submit
            .as_ref()
            .and_then(|s| std::fs::canonicalize(s).ok().or(Some(s.clone())))
            .and_then(|s| s.parent().map(|d| d.join("python")))
            .filter(|p| p.is_file());
        let python = std::env::var_os("PYSPARK_PYTHON")
            .map(PathBuf::from)
            .or_else(|| venv_python.clone())
            .or_else(|| on_path("python3"))
            .ok_or(InstallError::NoPython)?;
        let home = match spark_home
            .map(Path::to_owned)
            .or_else(|| std::env::var_os("SPARK_HOME").map(PathBuf::from))
        {
            Some(h) => h,
            None => pyspark_dir(venv_python.as_deref().unwrap_or(&python))
                .ok_or(InstallError::NotFound)?,
        };
        check_home(&home)?;
        Ok(Installation {
            spark_home: home,
            java: java()?,
            python,
        })
    }
}

impl Installation {
    /// The installation of a `pip install pyspark` whose `spark-submit` is `submit` (in the
    /// `bin/` of a virtualenv, next to its `python`), with Java found as [`Installation::discover`]
    /// finds it.
    pub fn from_spark_submit(submit: &Path) -> Result<Installation, InstallError> {
        let python = submit
            .parent()
            .map(|d| d.join("python"))
            .filter(|p| p.is_file())
            .ok_or(InstallError::NoPython)?;
        let home = pyspark_dir(&python).ok_or(InstallError::NotFound)?;
        check_home(&home)?;
        Ok(Installation {
            spark_home: home,
            java: java()?,
            python,
        })
    }
}

/// `$JAVA_HOME/bin/java`, else the `java` on `PATH`, resolved through links (`/usr/bin/java`
/// is a link into the JDK, whose home is two levels above the real file).
fn java() -> Result<PathBuf, InstallError> {
    let java = std::env::var_os("JAVA_HOME")
        .map(|h| PathBuf::from(h).join("bin").join("java"))
        .filter(|j| j.is_file())
        .or_else(|| on_path("java"))
        .ok_or(InstallError::NoJava)?;
    Ok(std::fs::canonicalize(&java).unwrap_or(java))
}

/// `name` in a directory of `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The directory of the `pyspark` package that `python` imports.
fn pyspark_dir(python: &Path) -> Option<PathBuf> {
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import os, pyspark; print(os.path.dirname(pyspark.__file__))",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let dir = PathBuf::from(dir.trim());
    (out.status.success() && dir.is_dir()).then_some(dir)
}

/// That `home` has what the launch plans use.
fn check_home(home: &Path) -> Result<(), InstallError> {
    for needed in ["bin/spark-submit", "jars", "python/lib"] {
        if !home.join(needed).exists() {
            return Err(InstallError::NotSpark {
                path: home.display().to_string(),
                missing: needed.to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_spark_is_named_with_what_it_lacks() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let err = check_home(dir.path()).unwrap_err();
        assert_eq!(
            err,
            InstallError::NotSpark {
                path: dir.path().display().to_string(),
                missing: "bin/spark-submit".into()
            }
        );
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/spark-submit"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("jars")).unwrap();
        assert!(
            check_home(dir.path())
                .unwrap_err()
                .to_string()
                .ends_with("it has no python/lib")
        );
        std::fs::create_dir_all(dir.path().join("python/lib")).unwrap();
        assert_eq!(check_home(dir.path()), Ok(()));
    }
}
