"""May the caller act as someone else (``kubectl --as``)? Asked of kube-apiserver with SubjectAccessReviews."""
